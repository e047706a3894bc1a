locals {
  # VM: the first half of the space is the VM's subnet; the second half stays free (e.g. for Azure Bastion).
  # AKS: the first half holds the nodes (overlay: only nodes take VNet addresses); the second half is cut into
  # 8 equal slices: slice 0 = private endpoints (Key Vault), slice 1+i = delegated PostgreSQL subnet of
  # environment i, the rest spare. A /16 gives a /17 for nodes and /20 slices; a /24 a /25 and /28 slices.
  half_nodes    = cidrsubnet(var.address_space, 1, 0)
  half_services = cidrsubnet(var.address_space, 1, 1)

  vm_subnets = {
    vm = local.half_nodes
  }

  aks_subnets = {
    aks_nodes         = local.half_nodes
    private_endpoints = cidrsubnet(local.half_services, 3, 0)
  }
  postgres_subnets = var.layout == "aks" ? {
    for i, env in var.environments : env => cidrsubnet(local.half_services, 3, 1 + i)
  } : {}

  subnets = var.layout == "vm" ? local.vm_subnets : local.aks_subnets

  # Overlap checks need addresses as numbers: a.b.c.d -> a*2^24 + b*2^16 + c*2^8 + d, and the range's last
  # address is first + 2^(32 - prefix) - 1. Two ranges overlap when each starts before the other ends.
  ranges = {
    for name, cidr in {
      vnet    = var.address_space
      pods    = var.pod_cidr
      service = var.service_cidr
      } : name => {
      first = sum([for i, octet in split(".", cidrhost(cidr, 0)) : tonumber(octet) * pow(256, 3 - i)])
      size  = pow(2, 32 - tonumber(split("/", cidr)[1]))
    }
  }
  overlaps = {
    for pair in [["vnet", "pods"], ["vnet", "service"], ["pods", "service"]] : join("/", pair) => (
      local.ranges[pair[0]].first < local.ranges[pair[1]].first + local.ranges[pair[1]].size &&
      local.ranges[pair[1]].first < local.ranges[pair[0]].first + local.ranges[pair[0]].size
    )
  }
  overlapping = var.layout == "aks" ? [for pair, hit in local.overlaps : pair if hit] : []

  # Kubernetes' DNS service takes the 10th address of the service range, as AKS's own default does.
  dns_service_ip = cidrhost(var.service_cidr, 10)
}
