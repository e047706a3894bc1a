# Credentials come from the usual sources (Azure CLI login, ARM_* environment variables, managed identity);
# nothing here stores them.
provider "azurerm" {
  features {
    resource_group {
      # `terraform destroy` must not delete resources someone added to the group by hand.
      prevent_deletion_if_contains_resources = true
    }
    virtual_machine {
      delete_os_disk_on_deletion = true
    }
  }

  subscription_id = var.subscription_id
}
