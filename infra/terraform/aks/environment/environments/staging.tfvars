# staging: a small Burstable Flexible Server without HA; same shape as prod, a fraction of its cost.
# Apply: terraform init -reconfigure -backend-config=../backend.hcl -backend-config=key=iots6/aks/env/staging.tfstate
#        terraform apply -var-file=environments/staging.tfvars
environment = "staging"

sizing = {
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
}
