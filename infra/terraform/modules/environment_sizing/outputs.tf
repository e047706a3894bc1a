output "environment" {
  description = "The environment these values are for."
  value       = var.environment
}

output "postgres" {
  description = "PostgreSQL Flexible Server settings: enabled, version, sku_name, storage_mb, storage_auto_grow_enabled, high_availability_mode (Disabled/SameZone/ZoneRedundant), zone, backup_retention_days, geo_redundant_backup_enabled."
  value       = local.postgres

  precondition {
    condition     = var.environment == "dev" || local.postgres.enabled
    error_message = "${var.environment} must use the external PostgreSQL Flexible Server (`postgres.enabled = true`); only dev may run PostgreSQL in the cluster."
  }
  precondition {
    condition     = var.environment != "prod" || local.postgres.high_availability_mode != "Disabled"
    error_message = "prod needs PostgreSQL high availability (`postgres.high_availability_mode = \"ZoneRedundant\"` or \"SameZone\")."
  }
  precondition {
    condition     = var.environment != "prod" || local.postgres.backup_retention_days >= 14
    error_message = "prod needs at least 14 days of PostgreSQL backups (`postgres.backup_retention_days`)."
  }
  precondition {
    condition     = !(local.burstable && local.postgres.high_availability_mode != "Disabled")
    error_message = "PostgreSQL high availability is not available on Burstable SKUs (${local.postgres.sku_name}); pick a GP_ or MO_ SKU or disable HA."
  }
}

output "key_vault" {
  description = "Key Vault settings: sku_name, purge_protection_enabled, soft_delete_retention_days."
  value       = local.key_vault

  precondition {
    condition     = var.environment != "prod" || local.key_vault.purge_protection_enabled
    error_message = "prod's Key Vault needs purge protection (`key_vault.purge_protection_enabled = true`)."
  }
}

output "alerts" {
  description = "Alert switch and thresholds for this environment's Prometheus rules (input of modules/prometheus_alerts)."
  value       = local.alerts
}
