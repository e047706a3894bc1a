variable "layout" {
  type        = string
  description = "Which address plan to compute: `vm` (one subnet for the single VM) or `aks` (nodes, private endpoints, one delegated PostgreSQL subnet per environment)."
  nullable    = false

  validation {
    condition     = contains(["vm", "aks"], var.layout)
    error_message = "`layout` must be \"vm\" or \"aks\"."
  }
}

variable "address_space" {
  type        = string
  description = "The virtual network's IPv4 address space, e.g. `10.30.0.0/24` for a VM or `10.40.0.0/16` for AKS. Use a private range that does not overlap networks you peer with."
  nullable    = false

  validation {
    condition     = can(cidrhost(var.address_space, 0)) && can(regex("^[0-9.]+/[0-9]+$", var.address_space))
    error_message = "`address_space` must be an IPv4 CIDR such as \"10.40.0.0/16\"."
  }
  validation {
    condition     = !can(cidrhost(var.address_space, 0)) || cidrhost(var.address_space, 0) == split("/", var.address_space)[0]
    error_message = "`address_space` must start on its network boundary (e.g. \"10.40.0.0/16\", not \"10.40.1.0/16\")."
  }
  validation {
    condition     = !can(cidrhost(var.address_space, 0)) || (tonumber(split("/", var.address_space)[1]) >= 8 && tonumber(split("/", var.address_space)[1]) <= 24)
    error_message = "`address_space` must be between /8 and /24: a /24 still leaves /28 slices, the smallest subnet PostgreSQL accepts."
  }
}

variable "environments" {
  type        = list(string)
  description = "AKS layout only: the environments that get a delegated PostgreSQL subnet, in a fixed order (the index decides the subnet, so append, never reorder)."
  default     = ["dev", "staging", "prod"]
  nullable    = false

  validation {
    condition     = length(var.environments) >= 1 && length(var.environments) <= 6 && length(distinct(var.environments)) == length(var.environments)
    error_message = "`environments` must list 1-6 distinct environment names."
  }
}

variable "pod_cidr" {
  type        = string
  description = "AKS layout only: the overlay range pods get addresses from (Azure CNI overlay). Must not overlap the VNet or the service range."
  default     = "10.244.0.0/16"
  nullable    = false

  validation {
    condition     = can(cidrhost(var.pod_cidr, 0))
    error_message = "`pod_cidr` must be an IPv4 CIDR."
  }
}

variable "service_cidr" {
  type        = string
  description = "AKS layout only: the range Kubernetes services get cluster IPs from. Must not overlap the VNet or the pod range."
  default     = "10.0.0.0/16"
  nullable    = false

  validation {
    condition     = can(cidrhost(var.service_cidr, 0))
    error_message = "`service_cidr` must be an IPv4 CIDR."
  }
}
