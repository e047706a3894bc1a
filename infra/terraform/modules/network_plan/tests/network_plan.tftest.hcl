# Real `terraform test` of the address plan: subnets inside the VNet, disjoint, stable per environment index,
# and overlapping pod/service ranges refused before anything reaches Azure.

run "vm_layout_gives_one_subnet_in_the_first_half" {
  command = plan
  variables {
    layout        = "vm"
    address_space = "10.30.0.0/24"
  }
  assert {
    condition     = jsonencode(output.subnets) == jsonencode({ vm = "10.30.0.0/25" })
    error_message = "VM subnet is not the first half of the space: ${jsonencode(output.subnets)}"
  }
  assert {
    condition     = length(output.postgres_subnets) == 0 && output.kubernetes == null
    error_message = "The VM layout must not plan AKS or PostgreSQL subnets."
  }
}

run "aks_layout_on_a_16" {
  command = plan
  variables {
    layout        = "aks"
    address_space = "10.40.0.0/16"
  }
  assert {
    condition     = output.subnets.aks_nodes == "10.40.0.0/17" && output.subnets.private_endpoints == "10.40.128.0/20"
    error_message = "Unexpected AKS subnets: ${jsonencode(output.subnets)}"
  }
  assert {
    condition = jsonencode(output.postgres_subnets) == jsonencode({
      dev     = "10.40.144.0/20"
      prod    = "10.40.176.0/20"
      staging = "10.40.160.0/20"
    })
    error_message = "Unexpected PostgreSQL subnets: ${jsonencode(output.postgres_subnets)}"
  }
  assert {
    condition     = output.kubernetes.dns_service_ip == "10.0.0.10" && output.kubernetes.pod_cidr == "10.244.0.0/16"
    error_message = "Unexpected Kubernetes ranges: ${jsonencode(output.kubernetes)}"
  }
}

run "aks_layout_on_a_24_still_fits_postgres_minimum" {
  command = plan
  variables {
    layout        = "aks"
    address_space = "10.50.7.0/24"
  }
  assert {
    condition     = alltrue([for cidr in values(output.postgres_subnets) : endswith(cidr, "/28")])
    error_message = "PostgreSQL needs at least a /28: ${jsonencode(output.postgres_subnets)}"
  }
  assert {
    condition     = alltrue([for cidr in concat(values(output.subnets), values(output.postgres_subnets)) : startswith(cidr, "10.50.7.")])
    error_message = "A subnet left the VNet."
  }
  assert {
    condition     = length(distinct(concat(values(output.subnets), values(output.postgres_subnets)))) == 5
    error_message = "Subnets are not distinct."
  }
}

run "appending_an_environment_keeps_existing_subnets" {
  command = plan
  variables {
    layout        = "aks"
    address_space = "10.40.0.0/16"
    environments  = ["dev", "staging", "prod", "perf"]
  }
  assert {
    condition     = output.postgres_subnets.prod == "10.40.176.0/20" && output.postgres_subnets.perf == "10.40.192.0/20"
    error_message = "Appending an environment moved an existing subnet."
  }
}

run "pod_range_inside_the_vnet_is_refused" {
  command = plan
  variables {
    layout        = "aks"
    address_space = "10.0.0.0/8"
    pod_cidr      = "10.244.0.0/16"
    service_cidr  = "172.16.0.0/16"
  }
  expect_failures = [output.subnets, output.kubernetes]
}

run "service_range_overlapping_pods_is_refused" {
  command = plan
  variables {
    layout        = "aks"
    address_space = "10.40.0.0/16"
    pod_cidr      = "192.168.0.0/16"
    service_cidr  = "192.168.128.0/20"
  }
  expect_failures = [output.subnets, output.kubernetes]
}

run "adjacent_ranges_are_not_overlaps" {
  command = plan
  variables {
    layout        = "aks"
    address_space = "10.1.0.0/16"
    pod_cidr      = "10.2.0.0/16"
    service_cidr  = "10.0.0.0/16"
  }
  assert {
    condition     = output.kubernetes.service_cidr == "10.0.0.0/16"
    error_message = "Adjacent, non-overlapping ranges were refused."
  }
}

run "misaligned_space_is_refused" {
  command = plan
  variables {
    layout        = "aks"
    address_space = "10.40.1.0/16"
  }
  expect_failures = [var.address_space]
}

run "too_small_space_is_refused" {
  command = plan
  variables {
    layout        = "vm"
    address_space = "10.30.0.0/26"
  }
  expect_failures = [var.address_space]
}

run "unknown_layout_is_refused" {
  command = plan
  variables {
    layout        = "k8s"
    address_space = "10.30.0.0/24"
  }
  expect_failures = [var.layout]
}
