terraform {
  # Provider-free: builds the Azure Portal dashboard's JSON; the platform root passes it to azurerm_portal_dashboard.
  required_version = ">= 1.9"
}
