terraform {
  required_version = ">= 1.9, < 2.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.42, < 5.0"
    }
  }

  # Remote state in an Azure Storage blob, configured at init time (docs/deploy-aks.md, "Terraform"):
  #   terraform init -backend-config=../backend.hcl -backend-config=key=iots6/aks/platform.tfstate
  backend "azurerm" {}
}
