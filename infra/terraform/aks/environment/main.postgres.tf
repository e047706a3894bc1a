# PostgreSQL Flexible Server for staging and prod (dev runs the chart's in-cluster PostgreSQL): private access
# only (VNet integration in the platform's delegated subnet + a private DNS zone linked to the platform VNet),
# TimescaleDB allow-listed and preloaded (the Apache edition Azure offers; the migrations handle it).
#
# The admin password never lands in git, in state or in a plan: an ephemeral random_password is generated at
# apply time and handed to two write-only arguments — the server's `administrator_password_wo` and the Key Vault
# secret's `value_wo` (postgres-admin-password). State keeps only `postgres_admin_password_version`; bump it to
# rotate both in one apply.

resource "azurerm_private_dns_zone" "postgres" {
  count = local.postgres.enabled ? 1 : 0

  name                = local.names.postgres_private_dns_zone
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

resource "azurerm_private_dns_zone_virtual_network_link" "postgres" {
  count = local.postgres.enabled ? 1 : 0

  name                  = local.names.postgres_dns_link
  resource_group_name   = azurerm_resource_group.this.name
  private_dns_zone_name = azurerm_private_dns_zone.postgres[0].name
  virtual_network_id    = var.platform.virtual_network_id
  registration_enabled  = false
  tags                  = local.tags
}

ephemeral "random_password" "postgres_admin" {
  count = local.postgres.enabled ? 1 : 0

  length           = 40
  special          = true
  override_special = "-_.~" # URL-safe: the password can sit in a postgresql:// URL unescaped
  min_lower        = 4
  min_upper        = 4
  min_numeric      = 4
}

resource "azurerm_postgresql_flexible_server" "this" {
  #checkov:skip=CKV2_AZURE_57:The server uses private access by VNet integration (delegated subnet, public_network_access_enabled = false, private DNS zone); a private endpoint is Azure's other, mutually exclusive private mode.
  count = local.postgres.enabled ? 1 : 0

  name                              = local.names.postgres_server
  location                          = azurerm_resource_group.this.location
  resource_group_name               = azurerm_resource_group.this.name
  version                           = local.postgres.version
  sku_name                          = local.postgres.sku_name
  storage_mb                        = local.postgres.storage_mb
  auto_grow_enabled                 = local.postgres.storage_auto_grow_enabled
  backup_retention_days             = local.postgres.backup_retention_days
  geo_redundant_backup_enabled      = local.postgres.geo_redundant_backup_enabled
  zone                              = local.postgres.zone
  delegated_subnet_id               = var.platform.postgres_subnet_id
  private_dns_zone_id               = azurerm_private_dns_zone.postgres[0].id
  public_network_access_enabled     = false
  administrator_login               = var.postgres_admin_login
  administrator_password_wo         = ephemeral.random_password.postgres_admin[0].result
  administrator_password_wo_version = var.postgres_admin_password_version
  tags                              = local.tags

  authentication {
    password_auth_enabled         = true
    active_directory_auth_enabled = false
  }

  dynamic "high_availability" {
    for_each = local.postgres.high_availability_mode == "Disabled" ? [] : [local.postgres.high_availability_mode]

    content {
      mode = high_availability.value
    }
  }

  lifecycle {
    # Azure moves the primary to the standby's zone on failover; do not fight it.
    ignore_changes = [zone, high_availability[0].standby_availability_zone]
  }

  depends_on = [azurerm_private_dns_zone_virtual_network_link.postgres]
}

# TimescaleDB must be allow-listed and preloaded before `CREATE EXTENSION timescaledb` (the migrate Job) works.
resource "azurerm_postgresql_flexible_server_configuration" "extensions" {
  count = local.postgres.enabled ? 1 : 0

  name      = "azure.extensions"
  server_id = azurerm_postgresql_flexible_server.this[0].id
  value     = "TIMESCALEDB,PG_STAT_STATEMENTS"
}

resource "azurerm_postgresql_flexible_server_configuration" "shared_preload_libraries" {
  count = local.postgres.enabled ? 1 : 0

  name      = "shared_preload_libraries"
  server_id = azurerm_postgresql_flexible_server.this[0].id
  value     = "timescaledb,pg_stat_statements"
}

resource "azurerm_postgresql_flexible_server_database" "iots6" {
  count = local.postgres.enabled ? 1 : 0

  name      = local.postgres_database
  server_id = azurerm_postgresql_flexible_server.this[0].id
  charset   = "UTF8"
  collation = "en_US.utf8"

  lifecycle {
    prevent_destroy = true
  }
}

resource "azurerm_key_vault_secret" "postgres_admin_password" {
  #checkov:skip=CKV_AZURE_41:Rotation is explicit (bump postgres_admin_password_version); an expiry date would make External Secrets fail to read a still-valid password.
  count = local.postgres.enabled ? 1 : 0

  name             = local.postgres_admin_password_secret
  key_vault_id     = azurerm_key_vault.this.id
  value_wo         = ephemeral.random_password.postgres_admin[0].result
  value_wo_version = var.postgres_admin_password_version
  content_type     = "text/plain"
  tags             = local.tags

  depends_on = [azurerm_role_assignment.secrets_officers]
}
