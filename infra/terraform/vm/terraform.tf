terraform {
  required_version = ">= 1.9, < 2.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.42, < 5.0"
    }
  }

  # Local state by default. `iotctl deploy vm` keeps one state file per environment with
  # `terraform init -backend-config=path=<state dir>/<env>.tfstate`; for a shared remote state, add a
  # backend_override.tf with `terraform { backend "azurerm" {} }` (docs/deploy-vm.md, "Terraform").
  backend "local" {}
}
