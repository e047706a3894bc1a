locals {
  # Defaults per environment. Sizes are starting points for a fleet of a few hundred devices; the docs
  # (docs/deploy-aks.md, "Terraform") give their estimated monthly cost.
  defaults = {
    dev = {
      postgres = {
        enabled                      = false # the chart's in-cluster PostgreSQL (values-dev.yaml)
        version                      = "16"
        sku_name                     = "B_Standard_B1ms"
        storage_mb                   = 32768
        storage_auto_grow_enabled    = true
        high_availability_mode       = "Disabled"
        zone                         = "1"
        backup_retention_days        = 7
        geo_redundant_backup_enabled = false
      }
      key_vault = {
        sku_name                   = "standard"
        purge_protection_enabled   = false # a dev vault can be destroyed and its name reused at once
        soft_delete_retention_days = 7
      }
      alerts = {
        enabled                    = false # dev is idle most of the time: "no rows" would page all night
        ingest_down_minutes        = 15
        config_server_down_minutes = 15
        no_rows_minutes            = 120
        commit_lag_p99_seconds     = 30
        dead_letters_per_15m       = 100
        traffic_drop_ratio         = 0.2
      }
    }
    staging = {
      postgres = {
        enabled                      = true
        version                      = "16"
        sku_name                     = "B_Standard_B2s"
        storage_mb                   = 32768
        storage_auto_grow_enabled    = true
        high_availability_mode       = "Disabled"
        zone                         = "1"
        backup_retention_days        = 7
        geo_redundant_backup_enabled = false
      }
      key_vault = {
        sku_name                   = "standard"
        purge_protection_enabled   = true
        soft_delete_retention_days = 30
      }
      alerts = {
        enabled                    = true
        ingest_down_minutes        = 10
        config_server_down_minutes = 10
        no_rows_minutes            = 60
        commit_lag_p99_seconds     = 15
        dead_letters_per_15m       = 50
        traffic_drop_ratio         = 0.3
      }
    }
    prod = {
      postgres = {
        enabled                      = true
        version                      = "16"
        sku_name                     = "GP_Standard_D2ds_v5"
        storage_mb                   = 131072
        storage_auto_grow_enabled    = true
        high_availability_mode       = "ZoneRedundant"
        zone                         = "1"
        backup_retention_days        = 35
        geo_redundant_backup_enabled = true
      }
      key_vault = {
        sku_name                   = "standard"
        purge_protection_enabled   = true
        soft_delete_retention_days = 90
      }
      alerts = {
        enabled                    = true
        ingest_down_minutes        = 5
        config_server_down_minutes = 5
        no_rows_minutes            = 15
        commit_lag_p99_seconds     = 10
        dead_letters_per_15m       = 20
        traffic_drop_ratio         = 0.5
      }
    }
  }

  chosen = local.defaults[var.environment]

  # Overrides win attribute by attribute; a null (omitted) attribute keeps the default.
  postgres  = merge(local.chosen.postgres, { for k, v in var.overrides.postgres : k => v if v != null })
  key_vault = merge(local.chosen.key_vault, { for k, v in var.overrides.key_vault : k => v if v != null })
  alerts    = merge(local.chosen.alerts, { for k, v in var.overrides.alerts : k => v if v != null })

  burstable = startswith(local.postgres.sku_name, "B_")
}
