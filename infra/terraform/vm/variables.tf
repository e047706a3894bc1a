variable "subscription_id" {
  type        = string
  description = "Azure subscription to deploy into. Null: taken from ARM_SUBSCRIPTION_ID (azurerm 4 requires one of them)."
  default     = null
}

variable "environment" {
  type        = string
  description = "Name of the iotctl environment this VM serves (e.g. `lab`, `field1`): 2-10 lower-case letters or digits. It names every resource (rg-iots6-<environment>-<region>, …)."
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "`environment` must be 2-10 lower-case letters or digits, starting with a letter (e.g. \"lab\")."
  }
}

variable "location" {
  type        = string
  description = "Azure region, e.g. `westeurope`."
  nullable    = false
}

variable "address_space" {
  type        = string
  description = "Private IPv4 range of the VM's virtual network; the VM's subnet is its first half."
  default     = "10.30.0.0/24"
  nullable    = false
}

variable "mqtt_tls_source_cidrs" {
  type        = list(string)
  description = "CIDRs that may reach MQTT over TLS on 8883. Devices on home/mobile networks usually need [\"0.0.0.0/0\"] (TLS + per-device credentials + ACLs protect the broker). No default: the operator decides."
  nullable    = false
}

variable "https_source_cidrs" {
  type        = list(string)
  description = "CIDRs that may reach HTTPS on 443 (config server for devices, Grafana for people). No default: the operator decides."
  nullable    = false
}

variable "ssh_source_cidrs" {
  type        = list(string)
  description = "The operator's address(es) for SSH on 22, e.g. [\"198.51.100.7/32\"]; `iotctl deploy vm` detects and passes it. Never the internet (refused). Empty: SSH closed."
  default     = []
  nullable    = false
}

variable "admin_username" {
  type        = string
  description = "Login of the VM's administrator (SSH key only; Ansible connects as this user)."
  default     = "iots6admin"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.admin_username)) && !contains(["root", "admin", "administrator", "user", "test", "guest", "sys", "adm", "backup", "console", "owner", "server", "support"], var.admin_username)
    error_message = "`admin_username` must be a Linux login (lower-case, <= 32 characters) and not one Azure reserves (root, admin, administrator, user, test, guest, …)."
  }
}

variable "admin_ssh_public_key" {
  type        = string
  description = "OpenSSH public key (one line: `ssh-ed25519 AAAA… comment` or `ssh-rsa …`) allowed to log in as `admin_username`. Password login is disabled."
  nullable    = false

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( .*)?$", trimspace(var.admin_ssh_public_key)))
    error_message = "`admin_ssh_public_key` must be one OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa-sha2-*), not a private key or a file path."
  }
}

variable "vm_size" {
  type        = string
  description = "VM size. The default, Standard_B2als_v2 (2 vCPU, 4 GiB, burstable), runs Mosquitto, PostgreSQL, the ingest, the config server and Grafana for a few hundred devices; see docs/deploy-vm.md for its estimated cost."
  default     = "Standard_B2als_v2"
  nullable    = false

  validation {
    condition     = can(regex("^Standard_[A-Za-z0-9_]+$", var.vm_size))
    error_message = "`vm_size` must be an Azure VM size such as \"Standard_B2als_v2\"."
  }
}

variable "zone" {
  type        = string
  description = "Availability zone (\"1\", \"2\" or \"3\") for the VM, its data disk and its public IP; null for a region without zones."
  default     = null

  validation {
    condition     = var.zone == null || contains(["1", "2", "3"], coalesce(var.zone, "1"))
    error_message = "`zone` must be \"1\", \"2\", \"3\" or null."
  }
}

variable "os_disk_size_gb" {
  type        = number
  description = "Size of the OS disk in GiB (Debian 12's image needs 30)."
  default     = 30
  nullable    = false

  validation {
    condition     = var.os_disk_size_gb >= 30 && var.os_disk_size_gb <= 1024
    error_message = "`os_disk_size_gb` must be between 30 and 1024."
  }
}

variable "os_disk_storage_account_type" {
  type        = string
  description = "Storage type of the OS disk."
  default     = "StandardSSD_LRS"
  nullable    = false

  validation {
    condition     = contains(["Standard_LRS", "StandardSSD_LRS", "Premium_LRS", "StandardSSD_ZRS", "Premium_ZRS"], var.os_disk_storage_account_type)
    error_message = "`os_disk_storage_account_type` must be one of Standard_LRS, StandardSSD_LRS, Premium_LRS, StandardSSD_ZRS, Premium_ZRS."
  }
}

variable "data_disk_size_gb" {
  type        = number
  description = "Size of the data disk (PostgreSQL's data directory and the broker's persistence; LUN 0) in GiB."
  default     = 32
  nullable    = false

  validation {
    condition     = var.data_disk_size_gb >= 4 && var.data_disk_size_gb <= 32767
    error_message = "`data_disk_size_gb` must be between 4 and 32767."
  }
}

variable "data_disk_storage_account_type" {
  type        = string
  description = "Storage type of the data disk. Premium_LRS gives PostgreSQL steady latency; StandardSSD_LRS costs less."
  default     = "Premium_LRS"
  nullable    = false

  validation {
    condition     = contains(["Standard_LRS", "StandardSSD_LRS", "Premium_LRS", "StandardSSD_ZRS", "Premium_ZRS", "PremiumV2_LRS"], var.data_disk_storage_account_type)
    error_message = "`data_disk_storage_account_type` must be one of Standard_LRS, StandardSSD_LRS, Premium_LRS, StandardSSD_ZRS, Premium_ZRS, PremiumV2_LRS."
  }
}

variable "trusted_launch_enabled" {
  type        = bool
  description = "Secure Boot and vTPM (Trusted Launch). Debian 12's gen2 image supports it; turn off only for a size that does not."
  default     = true
  nullable    = false
}

variable "encryption_at_host_enabled" {
  type        = bool
  description = "Encrypt the VM's temp disk and disk caches at the host. Needs the subscription feature Microsoft.Compute/EncryptionAtHost registered first (docs/deploy-vm.md), so it is off by default."
  default     = false
  nullable    = false
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource, merged over the standard ones (workload, environment, managed-by, repository)."
  default     = {}
  nullable    = false
}
