# Credentials come from the usual sources (Azure CLI login, ARM_* environment variables, managed identity or
# workload identity in CI); nothing here stores them.
provider "azurerm" {
  features {
    resource_group {
      prevent_deletion_if_contains_resources = true
    }
    key_vault {
      # Never purge on destroy: a destroyed vault stays recoverable for its soft-delete retention, and
      # re-creating the environment recovers it (with its secrets) instead of failing on the taken name.
      purge_soft_delete_on_destroy    = false
      recover_soft_deleted_key_vaults = true
    }
  }

  subscription_id = var.subscription_id
}

provider "random" {}
