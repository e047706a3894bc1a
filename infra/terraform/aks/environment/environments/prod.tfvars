# prod: General Purpose Flexible Server, zone-redundant HA, 35 days of geo-redundant backups, purge protection.
# modules/environment_sizing refuses prod without HA, with < 14 days of backups or without purge protection.
# Apply: terraform init -reconfigure -backend-config=../backend.hcl -backend-config=key=iots6/aks/env/prod.tfstate
#        terraform apply -var-file=environments/prod.tfvars
environment = "prod"

sizing = {
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
}
