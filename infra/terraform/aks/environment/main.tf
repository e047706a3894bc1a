# One iots6 environment on the shared AKS platform (DECISIONS §7): its Key Vault (RBAC, private endpoint), the
# user-assigned identity External Secrets uses through workload identity (federated credential for
# system:serviceaccount:iots6-<env>:iots6-secrets, issuer = the cluster's OIDC issuer) with `Key Vault Secrets
# User` on this vault only, a second federated credential for the chart's Grafana (iots6-grafana) with
# `Monitoring Data Reader` on the platform's Azure Monitor workspace, and — for staging and prod — PostgreSQL
# Flexible Server (main.postgres.tf).

data "azurerm_client_config" "current" {}

module "naming" {
  source = "../../modules/naming"

  environment = var.environment
  location    = var.platform.location
  unique_seed = data.azurerm_client_config.current.subscription_id
  tags        = var.tags
}

module "sizing" {
  source = "../../modules/environment_sizing"

  environment = var.environment
  overrides   = { postgres = var.sizing.postgres, key_vault = var.sizing.key_vault }
}

resource "azurerm_resource_group" "this" {
  name     = local.names.resource_group
  location = module.naming.location
  tags     = local.tags
}

resource "azurerm_key_vault" "this" {
  #checkov:skip=CKV_AZURE_110:Purge protection comes from modules/environment_sizing: on for staging and prod (its policy refuses prod without it; tests/infra/terraform asserts it), off for dev so a dev vault can be destroyed and its name reused at once.
  #checkov:skip=CKV_AZURE_42:Soft delete is always on (Azure no longer allows turning it off); purge protection, the other half of this check, is per environment as explained for CKV_AZURE_110.
  #checkov:skip=CKV_AZURE_189:The public endpoint stays on but denies everything except key_vault_allowed_cidrs (the operator, for `iotctl secrets seed`); the cluster reaches the vault through the private endpoint below.
  name                          = local.names.key_vault
  location                      = azurerm_resource_group.this.location
  resource_group_name           = azurerm_resource_group.this.name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = local.key_vault.sku_name
  rbac_authorization_enabled    = true
  purge_protection_enabled      = local.key_vault.purge_protection_enabled
  soft_delete_retention_days    = local.key_vault.soft_delete_retention_days
  public_network_access_enabled = true
  tags                          = local.tags

  network_acls {
    default_action = "Deny"
    bypass         = "None"
    ip_rules       = var.key_vault_allowed_cidrs
  }
}

resource "azurerm_private_endpoint" "key_vault" {
  name                = local.names.key_vault_private_endpoint
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  subnet_id           = var.platform.private_endpoints_subnet_id
  tags                = local.tags

  private_service_connection {
    name                           = "vault"
    private_connection_resource_id = azurerm_key_vault.this.id
    subresource_names              = ["vault"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "vault"
    private_dns_zone_ids = [var.platform.key_vault_private_dns_zone_id]
  }
}

# Who may write secrets: the identity running Terraform (it writes postgres-admin-password) and the listed
# operators/pipelines (`iotctl secrets seed`).
resource "azurerm_role_assignment" "secrets_officers" {
  for_each = toset(concat([data.azurerm_client_config.current.object_id], var.secrets_officer_object_ids))

  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = each.value
}

# The identity External Secrets uses in this environment's namespace, and nothing else.
resource "azurerm_user_assigned_identity" "secrets" {
  name                = local.names.workload_identity
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

# The subject must equal the service account token's `sub` exactly and the issuer the cluster's OIDC issuer:
# any difference is AADSTS70021 ("no matching federated identity record found").
resource "azurerm_federated_identity_credential" "secrets" {
  name                = local.names.federated_identity_credential
  resource_group_name = azurerm_resource_group.this.name
  parent_id           = azurerm_user_assigned_identity.secrets.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = var.platform.oidc_issuer_url
  subject             = module.naming.federated_subject
}

resource "azurerm_role_assignment" "secrets_user" {
  scope                            = azurerm_key_vault.this.id
  role_definition_name             = "Key Vault Secrets User"
  principal_id                     = azurerm_user_assigned_identity.secrets.principal_id
  skip_service_principal_aad_check = true
}

# The chart's Grafana queries managed Prometheus (grafana.prometheusUrl = the platform's
# prometheus_query_endpoint) with the same identity (its service account carries the same client id), through a
# second federated credential for its own service account. Reading metrics is all it may do there.
resource "azurerm_federated_identity_credential" "grafana" {
  name                = local.names.grafana_federated_credential
  resource_group_name = azurerm_resource_group.this.name
  parent_id           = azurerm_user_assigned_identity.secrets.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = var.platform.oidc_issuer_url
  subject             = module.naming.grafana_federated_subject
}

resource "azurerm_role_assignment" "monitoring_data_reader" {
  scope                            = var.platform.monitor_workspace_id
  role_definition_name             = "Monitoring Data Reader"
  principal_id                     = azurerm_user_assigned_identity.secrets.principal_id
  skip_service_principal_aad_check = true
}
