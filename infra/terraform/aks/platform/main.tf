# The shared AKS platform (DECISIONS §7): resource group, virtual network, the AKS cluster with OIDC issuer and
# workload identity, the container registry, and monitoring (main.monitoring.tf). Each environment's own
# resources (Key Vault, identity, PostgreSQL) are in ../environment, applied once per environment.

data "azurerm_client_config" "current" {}

module "naming" {
  source = "../../modules/naming"

  environment = "platform"
  location    = var.location
  unique_seed = data.azurerm_client_config.current.subscription_id
  tags        = var.tags
}

# Names of each environment (namespace, federated subject) from the same module the environment root uses.
module "environment_naming" {
  source   = "../../modules/naming"
  for_each = toset(var.environments)

  environment = each.key
  location    = var.location
  unique_seed = data.azurerm_client_config.current.subscription_id
}

module "network_plan" {
  source = "../../modules/network_plan"

  layout        = "aks"
  address_space = var.address_space
  environments  = var.environments
  pod_cidr      = var.pod_cidr
  service_cidr  = var.service_cidr
}

resource "azurerm_resource_group" "this" {
  name     = local.names.resource_group
  location = module.naming.location
  tags     = local.tags
}

resource "azurerm_virtual_network" "this" {
  name                = local.names.virtual_network
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  address_space       = [module.network_plan.address_space]
  tags                = local.tags
}

resource "azurerm_subnet" "aks_nodes" {
  #checkov:skip=CKV2_AZURE_31:AKS manages the nodes' NSG in its node resource group and adds the LoadBalancer rules of the broker's Service (source ranges from the chart's values) there; a second NSG on this subnet would have to duplicate those rules by hand or silently block device traffic.
  name                 = local.names.subnet_aks_nodes
  resource_group_name  = azurerm_resource_group.this.name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [module.network_plan.subnets["aks_nodes"]]
}

resource "azurerm_subnet" "private_endpoints" {
  name                              = local.names.subnet_private_endpoints
  resource_group_name               = azurerm_resource_group.this.name
  virtual_network_name              = azurerm_virtual_network.this.name
  address_prefixes                  = [module.network_plan.subnets["private_endpoints"]]
  private_endpoint_network_policies = "Enabled"
  default_outbound_access_enabled   = false
}

# One delegated subnet per environment for its PostgreSQL Flexible Server (VNet integration). Created for
# every environment so the address plan never moves; dev's stays empty while dev uses in-cluster PostgreSQL.
resource "azurerm_subnet" "postgres" {
  for_each = module.network_plan.postgres_subnets

  name                            = "snet-${each.key}-postgres"
  resource_group_name             = azurerm_resource_group.this.name
  virtual_network_name            = azurerm_virtual_network.this.name
  address_prefixes                = [each.value]
  default_outbound_access_enabled = false

  delegation {
    name = "postgres-flexible-server"

    service_delegation {
      name    = "Microsoft.DBforPostgreSQL/flexibleServers"
      actions = ["Microsoft.Network/virtualNetworks/subnets/join/action"]
    }
  }
}

# Only the cluster's nodes reach the private endpoints (Key Vault, 443) and the databases (5432). With Azure CNI
# overlay, pod traffic to VNet addresses leaves with its node's address, so the nodes' subnet is the source.
resource "azurerm_network_security_group" "private_endpoints" {
  name                = "${local.names.network_security_group}-private-endpoints"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags

  security_rule {
    name                       = "allow-https-from-aks-nodes"
    priority                   = 100
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = "443"
    source_address_prefix      = module.network_plan.subnets["aks_nodes"]
    destination_address_prefix = module.network_plan.subnets["private_endpoints"]
  }

  security_rule {
    name                       = "deny-all-inbound"
    priority                   = 4096
    direction                  = "Inbound"
    access                     = "Deny"
    protocol                   = "*"
    source_port_range          = "*"
    destination_port_range     = "*"
    source_address_prefix      = "*"
    destination_address_prefix = "*"
  }
}

resource "azurerm_subnet_network_security_group_association" "private_endpoints" {
  subnet_id                 = azurerm_subnet.private_endpoints.id
  network_security_group_id = azurerm_network_security_group.private_endpoints.id
}

resource "azurerm_network_security_group" "postgres" {
  for_each = module.network_plan.postgres_subnets

  name                = "${local.names.network_security_group}-${each.key}-postgres"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags

  security_rule {
    name                       = "allow-postgres-from-aks-nodes"
    priority                   = 100
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = "5432"
    source_address_prefix      = module.network_plan.subnets["aks_nodes"]
    destination_address_prefix = each.value
  }

  # High availability replicates between the primary and the standby inside the delegated subnet.
  security_rule {
    name                       = "allow-postgres-replication-in-subnet"
    priority                   = 110
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = "5432"
    source_address_prefix      = each.value
    destination_address_prefix = each.value
  }

  security_rule {
    name                       = "deny-all-inbound"
    priority                   = 4096
    direction                  = "Inbound"
    access                     = "Deny"
    protocol                   = "*"
    source_port_range          = "*"
    destination_port_range     = "*"
    source_address_prefix      = "*"
    destination_address_prefix = "*"
  }
}

resource "azurerm_subnet_network_security_group_association" "postgres" {
  for_each = module.network_plan.postgres_subnets

  subnet_id                 = azurerm_subnet.postgres[each.key].id
  network_security_group_id = azurerm_network_security_group.postgres[each.key].id
}

# Key Vault private endpoints of the environments register here; the zone is linked to the platform VNet so
# pods (ESO) resolve <vault>.vault.azure.net to the private address.
resource "azurerm_private_dns_zone" "key_vault" {
  name                = "privatelink.vaultcore.azure.net"
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

resource "azurerm_private_dns_zone_virtual_network_link" "key_vault" {
  name                  = local.names.key_vault_private_dns_link
  resource_group_name   = azurerm_resource_group.this.name
  private_dns_zone_name = azurerm_private_dns_zone.key_vault.name
  virtual_network_id    = azurerm_virtual_network.this.id
  registration_enabled  = false
  tags                  = local.tags
}
