# Credentials come from the usual sources (Azure CLI login, ARM_* environment variables, managed identity or
# workload identity in CI); nothing here stores them.
provider "azurerm" {
  features {
    resource_group {
      prevent_deletion_if_contains_resources = true
    }
  }

  subscription_id = var.subscription_id
}
