locals {
  names = module.naming.names
  tags  = module.naming.tags

  postgres  = module.sizing.postgres
  key_vault = module.sizing.key_vault

  # Key Vault secret names (DECISIONS §6): one vault per environment, so names carry no environment.
  postgres_admin_password_secret = "postgres-admin-password"
  postgres_database              = "iots6"
}
