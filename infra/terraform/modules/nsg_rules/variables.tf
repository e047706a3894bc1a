variable "mqtt_tls_source_cidrs" {
  type        = list(string)
  description = <<-EOT
    Who may reach MQTT over TLS (8883): IPv4/IPv6 CIDRs. Devices on home or mobile networks have changing
    addresses, so fleets usually need `["0.0.0.0/0"]` here; the broker then relies on TLS plus per-device
    credentials and ACLs. An empty list closes the port.
  EOT
  nullable    = false

  validation {
    condition     = alltrue([for c in var.mqtt_tls_source_cidrs : can(cidrhost(c, 0))])
    error_message = "Every `mqtt_tls_source_cidrs` entry must be a CIDR such as \"203.0.113.0/24\" or \"0.0.0.0/0\" (service tags and \"*\" are refused)."
  }
}

variable "https_source_cidrs" {
  type        = list(string)
  description = "Who may reach HTTPS (443: the config server and Grafana behind one reverse proxy): CIDRs. Devices fetch their configuration here too. An empty list closes the port."
  nullable    = false

  validation {
    condition     = alltrue([for c in var.https_source_cidrs : can(cidrhost(c, 0))])
    error_message = "Every `https_source_cidrs` entry must be a CIDR (service tags and \"*\" are refused)."
  }
}

variable "ssh_source_cidrs" {
  type        = list(string)
  description = <<-EOT
    The operator's address(es) that may reach SSH (22), as /32 (IPv4) or /128 (IPv6) CIDRs, or a small office
    range (at most /24 or /56 wide). `iotctl deploy vm` detects the operator's public address and passes it. An
    empty list closes SSH entirely (configure through the serial console or Azure Bastion instead).
  EOT
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for c in var.ssh_source_cidrs : can(cidrhost(c, 0))])
    error_message = "Every `ssh_source_cidrs` entry must be a CIDR such as \"198.51.100.7/32\"."
  }
  validation {
    condition = alltrue([
      for c in var.ssh_source_cidrs : can(cidrhost(c, 0)) && (
        strcontains(c, ":") ? tonumber(split("/", c)[1]) >= 56 : tonumber(split("/", c)[1]) >= 24
      )
    ])
    error_message = "SSH may only be opened to the operator's address or a small range (IPv4 /24 or narrower, IPv6 /56 or narrower), never to the internet."
  }
}

variable "base_priority" {
  type        = number
  description = "Priority of the first allow rule; the next ones follow in steps of 10. The closing deny rule always sits at 4096."
  default     = 100
  nullable    = false

  validation {
    condition     = var.base_priority >= 100 && var.base_priority <= 3000 && floor(var.base_priority) == var.base_priority
    error_message = "`base_priority` must be a whole number between 100 and 3000."
  }
}
