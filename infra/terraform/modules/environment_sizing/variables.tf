variable "environment" {
  type        = string
  description = "The AKS environment: `dev`, `staging` or `prod`. Picks the defaults and the policy (prod: zone-redundant HA, long backups, purge protection)."
  nullable    = false

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "`environment` must be one of \"dev\", \"staging\", \"prod\"."
  }
}

variable "overrides" {
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
    alerts = optional(object({
      enabled                    = optional(bool)
      ingest_down_minutes        = optional(number)
      config_server_down_minutes = optional(number)
      no_rows_minutes            = optional(number)
      commit_lag_p99_seconds     = optional(number)
      dead_letters_per_15m       = optional(number)
      traffic_drop_ratio         = optional(number)
    }), {})
  })
  description = <<-EOT
    Per-environment values that replace the defaults of locals.tf; omitted attributes keep the default.
    `postgres`: the Flexible Server (`enabled` false = the chart's in-cluster PostgreSQL, dev only).
    `key_vault`: SKU, purge protection, soft-delete retention. `alerts`: whether this environment's Prometheus
    alert rules are on, and their thresholds (see modules/prometheus_alerts).
  EOT
  default     = {}
  nullable    = false

  validation {
    condition     = var.overrides.postgres.sku_name == null || can(regex("^(B|GP|MO)_Standard_[A-Za-z0-9_]+$", var.overrides.postgres.sku_name))
    error_message = "`postgres.sku_name` must be a Flexible Server SKU such as \"B_Standard_B1ms\" or \"GP_Standard_D2ds_v5\"."
  }
  validation {
    condition     = var.overrides.postgres.storage_mb == null || contains([32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4193280, 4194304, 8388608, 16777216, 33553408], var.overrides.postgres.storage_mb)
    error_message = "`postgres.storage_mb` must be a size Flexible Server offers (32768, 65536, 131072, 262144, 524288, 1048576, …)."
  }
  validation {
    condition     = var.overrides.postgres.backup_retention_days == null || (coalesce(var.overrides.postgres.backup_retention_days, 7) >= 7 && coalesce(var.overrides.postgres.backup_retention_days, 7) <= 35)
    error_message = "`postgres.backup_retention_days` must be between 7 and 35."
  }
  validation {
    condition     = var.overrides.postgres.high_availability_mode == null || contains(["Disabled", "SameZone", "ZoneRedundant"], coalesce(var.overrides.postgres.high_availability_mode, "Disabled"))
    error_message = "`postgres.high_availability_mode` must be \"Disabled\", \"SameZone\" or \"ZoneRedundant\"."
  }
  validation {
    condition     = var.overrides.postgres.version == null || contains(["14", "15", "16"], coalesce(var.overrides.postgres.version, "16"))
    error_message = "`postgres.version` must be 14, 15 or 16 (the versions on which Azure offers TimescaleDB)."
  }
  validation {
    condition     = var.overrides.key_vault.sku_name == null || contains(["standard", "premium"], coalesce(var.overrides.key_vault.sku_name, "standard"))
    error_message = "`key_vault.sku_name` must be \"standard\" or \"premium\"."
  }
  validation {
    condition     = var.overrides.key_vault.soft_delete_retention_days == null || (coalesce(var.overrides.key_vault.soft_delete_retention_days, 7) >= 7 && coalesce(var.overrides.key_vault.soft_delete_retention_days, 7) <= 90)
    error_message = "`key_vault.soft_delete_retention_days` must be between 7 and 90."
  }
  validation {
    condition = alltrue([
      for k in ["ingest_down_minutes", "config_server_down_minutes", "no_rows_minutes"] :
      lookup(var.overrides.alerts, k, null) == null || (coalesce(lookup(var.overrides.alerts, k, null), 1) >= 1 && coalesce(lookup(var.overrides.alerts, k, null), 1) <= 1440)
    ])
    error_message = "`alerts.ingest_down_minutes`, `alerts.config_server_down_minutes` and `alerts.no_rows_minutes` must be between 1 and 1440."
  }
  validation {
    condition     = var.overrides.alerts.traffic_drop_ratio == null || (coalesce(var.overrides.alerts.traffic_drop_ratio, 0.5) > 0 && coalesce(var.overrides.alerts.traffic_drop_ratio, 0.5) < 1)
    error_message = "`alerts.traffic_drop_ratio` must be between 0 and 1 (e.g. 0.5: alert when traffic falls below half of yesterday's)."
  }
}
