variable "subscription_id" {
  type        = string
  description = "Azure subscription (the platform's). Null: taken from ARM_SUBSCRIPTION_ID."
  default     = null
}

variable "environment" {
  type        = string
  description = "The environment this state is for: `dev`, `staging` or `prod` (environments/<env>.tfvars sets it)."
  nullable    = false

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "`environment` must be \"dev\", \"staging\" or \"prod\"."
  }
}

variable "platform" {
  type = object({
    location                      = string
    resource_group_name           = string
    kubernetes_cluster_name       = string
    oidc_issuer_url               = string
    virtual_network_id            = string
    private_endpoints_subnet_id   = string
    key_vault_private_dns_zone_id = string
    postgres_subnet_id            = string
    postgres_subnet_cidr          = string
    monitor_workspace_id          = string
  })
  description = "What the platform root created, from its `environment_inputs[<env>]` output (iotctl writes it to platform.auto.tfvars.json)."
  nullable    = false

  validation {
    condition     = can(regex("^https://", var.platform.oidc_issuer_url)) && endswith(var.platform.oidc_issuer_url, "/")
    error_message = "`platform.oidc_issuer_url` must be the cluster's OIDC issuer URL exactly as AKS reports it (https://…/, with the trailing slash): a different spelling is the AADSTS70021 \"no matching federated identity record\" error."
  }
  validation {
    condition     = can(cidrhost(var.platform.postgres_subnet_cidr, 0))
    error_message = "`platform.postgres_subnet_cidr` must be the environment's PostgreSQL subnet as a CIDR (the platform's `environment_inputs` output)."
  }
}

variable "sizing" {
  type = object({
    postgres = optional(object({
      enabled                      = optional(bool)
      version                      = optional(string)
      sku_name                     = optional(string)
      storage_mb                   = optional(number)
      storage_auto_grow_enabled    = optional(bool)
      high_availability_mode       = optional(string)
      zone                         = optional(string)
      backup_retention_days        = optional(number)
      geo_redundant_backup_enabled = optional(bool)
    }), {})
    key_vault = optional(object({
      sku_name                   = optional(string)
      purge_protection_enabled   = optional(bool)
      soft_delete_retention_days = optional(number)
    }), {})
  })
  description = "Per-environment sizing over the defaults of modules/environment_sizing (environments/<env>.tfvars spells them out). The module refuses what the environment's policy forbids (prod without HA, …)."
  default     = {}
  nullable    = false
}

variable "key_vault_allowed_cidrs" {
  type        = list(string)
  description = "Public addresses allowed to the vault's data plane besides the cluster's private endpoint: the operator's address, so Terraform and `iotctl secrets seed` can write secrets. Everything else is denied."
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for c in var.key_vault_allowed_cidrs : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "`key_vault_allowed_cidrs` must list CIDRs, never 0.0.0.0/0."
  }
}

variable "secrets_officer_object_ids" {
  type        = list(string)
  description = "Entra ID users/groups/pipelines that may write this environment's secrets (`Key Vault Secrets Officer`). The identity running Terraform always gets it."
  default     = []
  nullable    = false
}

variable "postgres_admin_login" {
  type        = string
  description = "Administrator login of the PostgreSQL Flexible Server (its password is generated; see postgres_admin_password_version)."
  default     = "iots6admin"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.postgres_admin_login)) && !contains(["admin", "administrator", "root", "azure_superuser", "azure_pg_admin", "guest", "public", "postgres"], var.postgres_admin_login) && !startswith(var.postgres_admin_login, "pg_")
    error_message = "`postgres_admin_login` must be a lower-case identifier that Azure allows (not admin, administrator, root, postgres, azure_superuser, azure_pg_admin, guest, public, pg_*)."
  }
}

variable "postgres_admin_password_version" {
  type        = number
  description = <<-EOT
    Bump to rotate the PostgreSQL admin password. Terraform generates the password (ephemeral, never in state or
    plan), sets it on the server and stores it as `postgres-admin-password` in the environment's Key Vault, both
    through write-only arguments; only this number is kept in state.
  EOT
  default     = 1
  nullable    = false

  validation {
    condition     = var.postgres_admin_password_version >= 1 && floor(var.postgres_admin_password_version) == var.postgres_admin_password_version
    error_message = "`postgres_admin_password_version` must be a whole number >= 1."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource, merged over the standard ones."
  default     = {}
  nullable    = false
}
