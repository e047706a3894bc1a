# The whole iots6 platform on one Azure VM: resource group, network with a locked-down NSG, a public IP with a
# DNS name, a Debian 12 VM (SSH key only, managed identity, boot diagnostics) and a data disk for PostgreSQL and
# the broker's persistence. Ansible (infra/ansible) configures the VM afterwards; `iotctl deploy vm` runs both.

data "azurerm_client_config" "current" {}

module "naming" {
  source = "../modules/naming"

  environment = var.environment
  location    = var.location
  unique_seed = data.azurerm_client_config.current.subscription_id
  tags        = var.tags
}

module "network_plan" {
  source = "../modules/network_plan"

  layout        = "vm"
  address_space = var.address_space
}

module "nsg_rules" {
  source = "../modules/nsg_rules"

  mqtt_tls_source_cidrs = var.mqtt_tls_source_cidrs
  https_source_cidrs    = var.https_source_cidrs
  ssh_source_cidrs      = var.ssh_source_cidrs
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

resource "azurerm_subnet" "vm" {
  name                 = local.names.subnet_vm
  resource_group_name  = azurerm_resource_group.this.name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [module.network_plan.subnets["vm"]]

  # No implicit outbound SNAT: the VM reaches the internet (apt, ACME) through its own public IP.
  default_outbound_access_enabled = false
}

resource "azurerm_network_security_group" "this" {
  name                = local.names.network_security_group
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

# Rules come from modules/nsg_rules: 8883 and 443 to the configured CIDRs, 22 from the operator only, then an
# explicit deny of everything else at 4096.
resource "azurerm_network_security_rule" "this" {
  for_each = local.nsg_rules

  name                        = each.value.name
  description                 = each.value.description
  priority                    = each.value.priority
  direction                   = each.value.direction
  access                      = each.value.access
  protocol                    = each.value.protocol
  source_port_range           = each.value.source_port_range
  destination_port_range      = each.value.destination_port_range
  source_address_prefixes     = each.value.source_address_prefixes
  destination_address_prefix  = each.value.destination_address_prefix
  resource_group_name         = azurerm_resource_group.this.name
  network_security_group_name = azurerm_network_security_group.this.name
}

resource "azurerm_subnet_network_security_group_association" "vm" {
  subnet_id                 = azurerm_subnet.vm.id
  network_security_group_id = azurerm_network_security_group.this.id
}

resource "azurerm_public_ip" "this" {
  name                = local.names.public_ip
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  allocation_method   = "Static"
  sku                 = "Standard"
  ip_version          = "IPv4"
  domain_name_label   = local.names.dns_label
  zones               = var.zone == null ? null : [var.zone]
  tags                = local.tags
}

resource "azurerm_network_interface" "this" {
  #checkov:skip=CKV_AZURE_119:By design: this single VM is the platform's public endpoint (devices connect to 8883/443 on its DNS name); the NSG (modules/nsg_rules) admits only 8883, 443 and the operator's SSH.
  name                = local.names.network_interface
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags

  ip_configuration {
    name                          = "primary"
    subnet_id                     = azurerm_subnet.vm.id
    private_ip_address_allocation = "Dynamic"
    public_ip_address_id          = azurerm_public_ip.this.id
  }
}

# Encryption at host needs the subscription feature Microsoft.Compute/EncryptionAtHost registered first, so it
# is a variable (off by default); managed disks are encrypted at rest by Azure either way. Backups are
# PostgreSQL dumps on a timer (Ansible), not Azure Backup of the whole VM.
resource "azurerm_linux_virtual_machine" "this" {
  name                            = local.names.virtual_machine
  computer_name                   = local.names.computer_name
  location                        = azurerm_resource_group.this.location
  resource_group_name             = azurerm_resource_group.this.name
  size                            = var.vm_size
  zone                            = var.zone
  admin_username                  = var.admin_username
  disable_password_authentication = true
  network_interface_ids           = [azurerm_network_interface.this.id]

  # Configuration is Ansible's job over SSH; VM extensions stay off (no agent-run scripts as root).
  allow_extension_operations = false
  provision_vm_agent         = true
  encryption_at_host_enabled = var.encryption_at_host_enabled
  secure_boot_enabled        = var.trusted_launch_enabled
  vtpm_enabled               = var.trusted_launch_enabled

  admin_ssh_key {
    username   = var.admin_username
    public_key = trimspace(var.admin_ssh_public_key)
  }

  os_disk {
    name                 = local.names.os_disk
    caching              = "ReadWrite"
    storage_account_type = var.os_disk_storage_account_type
    disk_size_gb         = var.os_disk_size_gb
  }

  source_image_reference {
    publisher = "Debian"
    offer     = "debian-12"
    sku       = "12-gen2"
    version   = "latest"
  }

  identity {
    type = "SystemAssigned"
  }

  # Managed boot diagnostics: serial log and screenshot in a Microsoft-managed storage account (no account of ours).
  boot_diagnostics {}

  tags = local.tags
}

resource "azurerm_managed_disk" "data" {
  #checkov:skip=CKV_AZURE_93:Encrypted at rest with platform-managed keys; customer-managed keys would need a disk encryption set plus a purge-protected Key Vault and key rotation, out of proportion for the single-VM option (use AKS for that).
  name                          = local.names.data_disk
  location                      = azurerm_resource_group.this.location
  resource_group_name           = azurerm_resource_group.this.name
  storage_account_type          = var.data_disk_storage_account_type
  create_option                 = "Empty"
  disk_size_gb                  = var.data_disk_size_gb
  zone                          = var.zone
  public_network_access_enabled = false
  network_access_policy         = "DenyAll"
  tags                          = local.tags
}

resource "azurerm_virtual_machine_data_disk_attachment" "data" {
  managed_disk_id    = azurerm_managed_disk.data.id
  virtual_machine_id = azurerm_linux_virtual_machine.this.id
  lun                = local.data_disk_lun
  caching            = "ReadOnly"
}
