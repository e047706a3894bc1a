terraform {
  # Provider-free: computes the VM's inbound rules; the root turns them into azurerm_network_security_rule.
  required_version = ">= 1.9"
}
