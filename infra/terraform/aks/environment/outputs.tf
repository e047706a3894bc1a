output "environment" {
  description = "The environment (dev, staging, prod)."
  value       = var.environment
}

output "resource_group_name" {
  description = "Resource group of this environment."
  value       = azurerm_resource_group.this.name
}

output "tenant_id" {
  description = "Entra ID tenant of the vault and the identity (the SecretStore's tenantId)."
  value       = data.azurerm_client_config.current.tenant_id
}

output "key_vault_name" {
  description = "Name of the environment's Key Vault."
  value       = azurerm_key_vault.this.name
}

output "key_vault_uri" {
  description = "The vault's URI: the SecretStore's vaultUrl and `iotctl secrets --env <env>`'s target."
  value       = azurerm_key_vault.this.vault_uri
}

output "kubernetes_namespace" {
  description = "The namespace the environment's Application deploys into."
  value       = module.naming.kubernetes_namespace
}

output "kubernetes_service_account" {
  description = "The service account the chart creates for External Secrets (annotate it with workload_identity_client_id)."
  value       = module.naming.kubernetes_service_account
}

output "workload_identity_client_id" {
  description = "Client id for the service account annotation `azure.workload.identity/client-id`."
  value       = azurerm_user_assigned_identity.secrets.client_id
}

output "workload_identity_principal_id" {
  description = "Object id of the identity (holds `Key Vault Secrets User` on this vault)."
  value       = azurerm_user_assigned_identity.secrets.principal_id
}

output "federated_credential" {
  description = "Issuer, subject and audience of the federated identity credential, for iotctl's workload-identity checks."
  value = {
    issuer   = azurerm_federated_identity_credential.secrets.issuer
    subject  = azurerm_federated_identity_credential.secrets.subject
    audience = azurerm_federated_identity_credential.secrets.audience
  }
}

output "grafana_federated_credential" {
  description = "Issuer, subject and audience of Grafana's federated identity credential (its Azure Monitor datasource uses the same identity)."
  value = {
    issuer   = azurerm_federated_identity_credential.grafana.issuer
    subject  = azurerm_federated_identity_credential.grafana.subject
    audience = azurerm_federated_identity_credential.grafana.audience
  }
}

output "secret_store" {
  description = "The values the chart's SecretStore `iots6-keyvault` needs (DECISIONS §7)."
  value = {
    name           = "iots6-keyvault"
    vault_url      = azurerm_key_vault.this.vault_uri
    tenant_id      = data.azurerm_client_config.current.tenant_id
    client_id      = azurerm_user_assigned_identity.secrets.client_id
    serviceAccount = module.naming.kubernetes_service_account
  }
}

output "postgres_subnet_cidr" {
  description = "The external PostgreSQL's delegated subnet (null in an environment that uses the in-cluster one): the chart's `database.egressCidr`, the one address range its NetworkPolicies let the ingest, config server, migrations and Grafana reach on 5432."
  value       = local.postgres.enabled ? var.platform.postgres_subnet_cidr : null
}

output "postgres" {
  description = "The external PostgreSQL (null in an environment that uses the in-cluster one): host, port, database, admin login and the Key Vault secret holding the admin password."
  value = local.postgres.enabled ? {
    host                  = azurerm_postgresql_flexible_server.this[0].fqdn
    port                  = 5432
    database              = local.postgres_database
    admin_login           = var.postgres_admin_login
    admin_password_secret = local.postgres_admin_password_secret
    sslmode               = "require"
  } : null
}
