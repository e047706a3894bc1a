output "resource_group_name" {
  description = "Resource group holding everything this root created (`iotctl deploy vm --destroy` names it)."
  value       = azurerm_resource_group.this.name
}

output "location" {
  description = "Region of the deployment."
  value       = azurerm_resource_group.this.location
}

output "vm_name" {
  description = "Name of the virtual machine."
  value       = azurerm_linux_virtual_machine.this.name
}

output "vm_id" {
  description = "Resource id of the virtual machine."
  value       = azurerm_linux_virtual_machine.this.id
}

output "vm_principal_id" {
  description = "Object id of the VM's system-assigned managed identity (grant it roles, e.g. on a Key Vault, if the VM should read secrets)."
  value       = azurerm_linux_virtual_machine.this.identity[0].principal_id
}

output "public_ip_address" {
  description = "The VM's static public IPv4 address."
  value       = azurerm_public_ip.this.ip_address
}

output "fqdn" {
  description = "The VM's DNS name (<label>.<region>.cloudapp.azure.com): put it in the server certificate and in the devices' configuration."
  value       = azurerm_public_ip.this.fqdn
}

output "admin_username" {
  description = "Login for SSH and Ansible."
  value       = azurerm_linux_virtual_machine.this.admin_username
}

output "ssh_command" {
  description = "How the operator reaches the VM (from an address in ssh_source_cidrs)."
  value       = "ssh ${azurerm_linux_virtual_machine.this.admin_username}@${azurerm_public_ip.this.fqdn}"
}

output "mqtt_endpoint" {
  description = "MQTT over TLS endpoint for devices and `iotctl tail`."
  value       = "mqtts://${azurerm_public_ip.this.fqdn}:8883"
}

output "https_endpoint" {
  description = "HTTPS endpoint of the config server and Grafana (behind the reverse proxy)."
  value       = "https://${azurerm_public_ip.this.fqdn}"
}

output "data_disk_lun" {
  description = "LUN of the data disk; on the VM it is /dev/disk/azure/scsi1/lun<LUN>."
  value       = azurerm_virtual_machine_data_disk_attachment.data.lun
}

output "allowed_inbound" {
  description = "Open TCP ports and their source CIDRs (port => CIDRs), for the host firewall Ansible configures to match the NSG."
  value       = module.nsg_rules.allowed_inbound
}

output "internet_exposed_ports" {
  description = "Ports open to the whole internet; the CLI shows them before applying."
  value       = module.nsg_rules.internet_exposed_ports
}
