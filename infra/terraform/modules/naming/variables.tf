variable "workload" {
  type        = string
  description = "Short workload name that starts every resource name (lower-case letters and digits, 2-8 characters)."
  default     = "iots6"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.workload))
    error_message = "`workload` must be 2-8 lower-case letters or digits, starting with a letter (e.g. \"iots6\")."
  }
}

variable "environment" {
  type        = string
  description = <<-EOT
    Name of the environment the resources belong to: `dev`, `staging`, `prod` for the AKS environments, the iotctl
    environment name for a VM (e.g. `lab`), or `platform` for the resources the AKS environments share.
    Lower-case letters and digits, 2-10 characters.
  EOT
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "`environment` must be 2-10 lower-case letters or digits, starting with a letter (e.g. \"prod\", \"lab\")."
  }
}

variable "location" {
  type        = string
  description = "Azure region the resources live in, as `az account list-locations` names it (e.g. `westeurope`; \"West Europe\" is accepted too)."
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,}$", lower(replace(var.location, " ", ""))))
    error_message = "`location` must be an Azure region name such as \"westeurope\"."
  }
}

variable "unique_seed" {
  type        = string
  description = <<-EOT
    Any stable string that differs between deployments that must not collide in Azure's global name spaces (Key
    Vault, Container Registry, PostgreSQL, DNS labels). The roots pass the subscription id. A short hash of it (not
    the seed itself) becomes the suffix of globally unique names, so re-running Terraform yields the same names.
  EOT
  nullable    = false

  validation {
    condition     = length(trimspace(var.unique_seed)) >= 4
    error_message = "`unique_seed` must be a stable string of at least 4 characters (the roots pass the subscription id)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags merged over the standard ones (`workload`, `environment`, `managed-by`, `repository`)."
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for k, v in var.tags : length(k) <= 512 && length(v) <= 256 && !can(regex("[<>%&\\\\?/]", k))])
    error_message = "Tag names must be at most 512 characters without any of < > % & \\ ? /, and values at most 256 characters (Azure's limits)."
  }
}
