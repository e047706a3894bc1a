locals {
  # One entry per exposed service; `sources` empty means the port stays closed (no rule at all).
  services = [
    { name = "allow-mqtt-tls-inbound", port = 8883, sources = var.mqtt_tls_source_cidrs, description = "MQTT over TLS (Mosquitto) for devices and operators" },
    { name = "allow-https-inbound", port = 443, sources = var.https_source_cidrs, description = "HTTPS: config server and Grafana behind the reverse proxy" },
    { name = "allow-ssh-operator-inbound", port = 22, sources = var.ssh_source_cidrs, description = "SSH from the operator's address only (Ansible)" },
  ]
  open_services = [for s in local.services : s if length(s.sources) > 0]

  allow_rules = [
    for i, s in local.open_services : {
      name                       = s.name
      description                = s.description
      priority                   = var.base_priority + 10 * i
      direction                  = "Inbound"
      access                     = "Allow"
      protocol                   = "Tcp"
      source_port_range          = "*"
      destination_port_range     = tostring(s.port)
      source_address_prefixes    = sort(distinct(s.sources))
      destination_address_prefix = "VirtualNetwork"
    }
  ]

  # Azure's default rules allow all inbound traffic from the VNet and the load balancer (priority 65000+). An
  # explicit deny at 4096, the lowest priority a custom rule may take, makes "nothing else" literally true.
  deny_rule = {
    name                       = "deny-all-inbound"
    description                = "Nothing else reaches the VM (overrides Azure's AllowVnetInBound default)"
    priority                   = 4096
    direction                  = "Inbound"
    access                     = "Deny"
    protocol                   = "*"
    source_port_range          = "*"
    destination_port_range     = "*"
    source_address_prefixes    = ["0.0.0.0/0"]
    destination_address_prefix = "*"
  }

  rules = concat(local.allow_rules, [local.deny_rule])

  internet_wide = ["0.0.0.0/0", "::/0"]
}
