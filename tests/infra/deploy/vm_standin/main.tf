# Test-only stand-in for infra/terraform/vm: the real root's variables.tf (copied beside this file by the test) and
# its provider-free modules, with `terraform_data` where the root has azurerm resources. Its outputs have the real
# root's names and shapes, so `iotctl deploy vm` runs its Terraform steps against a real Terraform here. It proves
# the orchestration and the variables' validation, nothing about Azure.

module "naming" {
  source = "../modules/naming"

  environment = var.environment
  location    = var.location
  unique_seed = coalesce(var.subscription_id, "00000000-0000-0000-0000-000000000000")
  tags        = var.tags
}

module "nsg_rules" {
  source = "../modules/nsg_rules"

  mqtt_tls_source_cidrs = var.mqtt_tls_source_cidrs
  https_source_cidrs    = var.https_source_cidrs
  ssh_source_cidrs      = var.ssh_source_cidrs
}

resource "terraform_data" "vm" {
  input = {
    name     = module.naming.names.virtual_machine
    size     = var.vm_size
    key      = var.admin_ssh_public_key
    ssh_from = var.ssh_source_cidrs
  }
}

output "resource_group_name" {
  value = module.naming.names.resource_group
}

output "vm_name" {
  value = terraform_data.vm.output.name
}

output "fqdn" {
  value = "${module.naming.names.dns_label}.${var.location}.cloudapp.azure.com"
}

output "admin_username" {
  value = var.admin_username
}

output "data_disk_lun" {
  value = 0
}

output "allowed_inbound" {
  value = module.nsg_rules.allowed_inbound
}

output "internet_exposed_ports" {
  value = module.nsg_rules.internet_exposed_ports
}
