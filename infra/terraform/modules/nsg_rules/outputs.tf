output "rules" {
  description = "The NSG rules in priority order: objects with the arguments of `azurerm_network_security_rule` (name, priority, direction, access, protocol, port and address fields, description)."
  value       = local.rules

  precondition {
    condition     = length(distinct([for r in local.rules : r.priority])) == length(local.rules)
    error_message = "Two NSG rules share a priority."
  }
  precondition {
    condition     = alltrue([for r in local.rules : r.access == "Deny" || !contains(["1883", "5432", "3000", "80", "*"], r.destination_port_range)])
    error_message = "An allow rule would open a port that must stay closed (1883, 5432, 3000, 80 or all ports)."
  }
}

output "allowed_inbound" {
  description = "Open TCP ports and their source CIDRs (port => list), for the host firewall that Ansible configures to match."
  value       = { for r in local.allow_rules : r.destination_port_range => r.source_address_prefixes }
}

output "internet_exposed_ports" {
  description = "Ports open to the whole internet (0.0.0.0/0 or ::/0), so the CLI can say so before applying."
  value       = sort([for r in local.allow_rules : r.destination_port_range if length(setintersection(r.source_address_prefixes, local.internet_wide)) > 0])
}
