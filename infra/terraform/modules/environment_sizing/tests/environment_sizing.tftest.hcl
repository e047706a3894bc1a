# Real `terraform test` of per-environment sizing: defaults per environment, attribute-wise overrides, and the
# policy (prod HA/backups/purge protection, external PostgreSQL outside dev) enforced at plan time.

run "dev_defaults" {
  command = plan
  variables {
    environment = "dev"
  }
  assert {
    condition     = output.postgres.enabled == false && output.key_vault.purge_protection_enabled == false && output.alerts.enabled == false
    error_message = "dev should use in-cluster PostgreSQL, no purge protection and no paging alerts."
  }
}

run "staging_defaults" {
  command = plan
  variables {
    environment = "staging"
  }
  assert {
    condition     = output.postgres.enabled && output.postgres.sku_name == "B_Standard_B2s" && output.postgres.high_availability_mode == "Disabled"
    error_message = "staging should use a small Burstable Flexible Server without HA."
  }
  assert {
    condition     = output.key_vault.purge_protection_enabled && output.alerts.enabled
    error_message = "staging should have purge protection and alerts."
  }
}

run "prod_defaults_meet_the_policy" {
  command = plan
  variables {
    environment = "prod"
  }
  assert {
    condition     = output.postgres.high_availability_mode == "ZoneRedundant" && output.postgres.backup_retention_days == 35 && startswith(output.postgres.sku_name, "GP_")
    error_message = "prod should be General Purpose, zone-redundant, 35 days of backups."
  }
  assert {
    condition     = output.key_vault.purge_protection_enabled && output.key_vault.soft_delete_retention_days == 90
    error_message = "prod's vault should have purge protection and 90 days of soft delete."
  }
  assert {
    condition     = output.postgres.version == "16" && output.postgres.storage_mb == 131072
    error_message = "prod PostgreSQL version/storage defaults changed."
  }
}

run "overrides_replace_only_what_they_name" {
  command = plan
  variables {
    environment = "staging"
    overrides = {
      postgres = { sku_name = "GP_Standard_D2ds_v5", high_availability_mode = "SameZone" }
      alerts   = { no_rows_minutes = 45 }
    }
  }
  assert {
    condition     = output.postgres.sku_name == "GP_Standard_D2ds_v5" && output.postgres.high_availability_mode == "SameZone" && output.postgres.storage_mb == 32768
    error_message = "Override did not merge attribute by attribute."
  }
  assert {
    condition     = output.alerts.no_rows_minutes == 45 && output.alerts.ingest_down_minutes == 10
    error_message = "Alert override did not merge attribute by attribute."
  }
}

run "prod_without_ha_is_refused" {
  command = plan
  variables {
    environment = "prod"
    overrides   = { postgres = { high_availability_mode = "Disabled" } }
  }
  expect_failures = [output.postgres]
}

run "prod_with_short_backups_is_refused" {
  command = plan
  variables {
    environment = "prod"
    overrides   = { postgres = { backup_retention_days = 7 } }
  }
  expect_failures = [output.postgres]
}

run "prod_without_purge_protection_is_refused" {
  command = plan
  variables {
    environment = "prod"
    overrides   = { key_vault = { purge_protection_enabled = false } }
  }
  expect_failures = [output.key_vault]
}

run "staging_without_external_postgres_is_refused" {
  command = plan
  variables {
    environment = "staging"
    overrides   = { postgres = { enabled = false } }
  }
  expect_failures = [output.postgres]
}

run "ha_on_burstable_is_refused" {
  command = plan
  variables {
    environment = "staging"
    overrides   = { postgres = { high_availability_mode = "ZoneRedundant" } }
  }
  expect_failures = [output.postgres]
}

run "odd_storage_size_is_refused" {
  command = plan
  variables {
    environment = "staging"
    overrides   = { postgres = { storage_mb = 50000 } }
  }
  expect_failures = [var.overrides]
}

run "unknown_environment_is_refused" {
  command = plan
  variables {
    environment = "qa"
  }
  expect_failures = [var.environment]
}
