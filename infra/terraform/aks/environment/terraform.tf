terraform {
  # Ephemeral resources and write-only arguments (the PostgreSQL admin password never enters state): 1.11+.
  required_version = ">= 1.11, < 2.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.42, < 5.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.7, < 4.0"
    }
  }

  # One state per environment, configured at init time (docs/deploy-aks.md, "Terraform"):
  #   terraform init -reconfigure -backend-config=../backend.hcl -backend-config=key=iots6/aks/env/<env>.tfstate
  backend "azurerm" {}
}
