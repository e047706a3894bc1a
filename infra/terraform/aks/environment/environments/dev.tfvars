# dev: in-cluster PostgreSQL (values-dev.yaml), a vault without purge protection, alerts off (platform).
# Apply: terraform init -reconfigure -backend-config=../backend.hcl -backend-config=key=iots6/aks/env/dev.tfstate
#        terraform apply -var-file=environments/dev.tfvars   (plus platform.auto.tfvars.json from the platform)
environment = "dev"

sizing = {
  postgres = {
    enabled = false
  }
  key_vault = {
    sku_name                   = "standard"
    purge_protection_enabled   = false
    soft_delete_retention_days = 7
  }
}
