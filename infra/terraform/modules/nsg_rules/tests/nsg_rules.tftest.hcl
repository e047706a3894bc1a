# Real `terraform test` of the VM's inbound rules: only 8883, 443 and operator-only 22, in fixed priorities,
# closed by an explicit deny; SSH from the internet refused at plan time.

variables {
  mqtt_tls_source_cidrs = ["0.0.0.0/0"]
  https_source_cidrs    = ["0.0.0.0/0"]
  ssh_source_cidrs      = ["198.51.100.7/32"]
}

run "default_rule_set" {
  command = plan

  assert {
    condition     = [for r in output.rules : r.name] == ["allow-mqtt-tls-inbound", "allow-https-inbound", "allow-ssh-operator-inbound", "deny-all-inbound"]
    error_message = "Unexpected rules: ${jsonencode([for r in output.rules : r.name])}"
  }
  assert {
    condition     = [for r in output.rules : r.priority] == [100, 110, 120, 4096]
    error_message = "Unexpected priorities: ${jsonencode([for r in output.rules : r.priority])}"
  }
  assert {
    condition     = [for r in output.rules : r.destination_port_range if r.access == "Allow"] == ["8883", "443", "22"]
    error_message = "Only 8883, 443 and 22 may be allowed."
  }
  assert {
    condition     = jsonencode(output.rules[2].source_address_prefixes) == jsonencode(["198.51.100.7/32"]) && output.rules[2].protocol == "Tcp"
    error_message = "SSH must be open to the operator's address only."
  }
  assert {
    condition     = output.rules[3].access == "Deny" && output.rules[3].destination_port_range == "*" && output.rules[3].direction == "Inbound"
    error_message = "The last rule must deny all other inbound traffic."
  }
  assert {
    condition     = jsonencode(output.internet_exposed_ports) == jsonencode(["443", "8883"])
    error_message = "internet_exposed_ports should list 443 and 8883: ${jsonencode(output.internet_exposed_ports)}"
  }
  assert {
    condition     = jsonencode(output.allowed_inbound["22"]) == jsonencode(["198.51.100.7/32"]) && length(output.allowed_inbound) == 3
    error_message = "allowed_inbound (for the host firewall) does not match the NSG."
  }
}

run "restricted_sources_and_closed_ssh" {
  command = plan
  variables {
    mqtt_tls_source_cidrs = ["203.0.113.0/24", "198.51.100.0/24", "203.0.113.0/24"]
    https_source_cidrs    = []
    ssh_source_cidrs      = []
    base_priority         = 200
  }
  assert {
    condition     = [for r in output.rules : r.name] == ["allow-mqtt-tls-inbound", "deny-all-inbound"]
    error_message = "Empty source lists must close their ports: ${jsonencode([for r in output.rules : r.name])}"
  }
  assert {
    condition     = jsonencode(output.rules[0].source_address_prefixes) == jsonencode(["198.51.100.0/24", "203.0.113.0/24"]) && output.rules[0].priority == 200
    error_message = "Sources are not de-duplicated and sorted, or base_priority ignored."
  }
  assert {
    condition     = length(output.internet_exposed_ports) == 0
    error_message = "Nothing is open to the internet here."
  }
}

run "ipv6_operator_address_is_accepted" {
  command = plan
  variables {
    ssh_source_cidrs = ["2001:db8::7/128"]
  }
  assert {
    condition     = jsonencode(output.allowed_inbound["22"]) == jsonencode(["2001:db8::7/128"])
    error_message = "An IPv6 operator address was not accepted."
  }
}

run "ssh_from_anywhere_is_refused" {
  command = plan
  variables {
    ssh_source_cidrs = ["0.0.0.0/0"]
  }
  expect_failures = [var.ssh_source_cidrs]
}

run "ssh_from_a_wide_range_is_refused" {
  command = plan
  variables {
    ssh_source_cidrs = ["10.0.0.0/8"]
  }
  expect_failures = [var.ssh_source_cidrs]
}

run "ssh_from_ipv6_internet_is_refused" {
  command = plan
  variables {
    ssh_source_cidrs = ["::/0"]
  }
  expect_failures = [var.ssh_source_cidrs]
}

run "service_tags_are_refused" {
  command = plan
  variables {
    mqtt_tls_source_cidrs = ["Internet"]
    https_source_cidrs    = ["*"]
  }
  expect_failures = [var.mqtt_tls_source_cidrs, var.https_source_cidrs]
}

run "out_of_range_priority_is_refused" {
  command = plan
  variables {
    base_priority = 4090
  }
  expect_failures = [var.base_priority]
}
