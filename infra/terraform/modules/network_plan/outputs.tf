output "address_space" {
  description = "The virtual network's address space (as given)."
  value       = var.address_space
}

output "subnets" {
  description = "Subnet ranges by role: `vm` for the VM layout; `aks_nodes` and `private_endpoints` for the AKS layout."
  value       = local.subnets

  precondition {
    condition     = length(local.overlapping) == 0
    error_message = "The VNet, pod and service ranges must not overlap; overlapping: ${join(", ", local.overlapping)}. Choose another `pod_cidr`/`service_cidr`."
  }
}

output "postgres_subnets" {
  description = "AKS layout: the delegated PostgreSQL subnet of each environment (environment name => CIDR); empty for the VM layout."
  value       = local.postgres_subnets
}

output "kubernetes" {
  description = "AKS layout: the overlay pod range, the service range and the DNS service IP for the cluster's network profile."
  value = var.layout == "aks" ? {
    pod_cidr       = var.pod_cidr
    service_cidr   = var.service_cidr
    dns_service_ip = local.dns_service_ip
  } : null

  precondition {
    condition     = length(local.overlapping) == 0
    error_message = "The VNet, pod and service ranges must not overlap; overlapping: ${join(", ", local.overlapping)}. Choose another `pod_cidr`/`service_cidr`."
  }
}
