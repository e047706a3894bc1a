locals {
  location = lower(replace(var.location, " ", ""))

  # Short region codes keep names inside Azure's tighter limits (Key Vault: 24 characters). Regions not listed
  # fall back to the first 6 characters of their name.
  location_short_codes = {
    australiaeast      = "aue"
    brazilsouth        = "brs"
    canadacentral      = "cac"
    centralindia       = "inc"
    centralus          = "cus"
    eastasia           = "ea"
    eastus             = "eus"
    eastus2            = "eus2"
    francecentral      = "frc"
    germanywestcentral = "gwc"
    italynorth         = "itn"
    japaneast          = "jpe"
    koreacentral       = "krc"
    northcentralus     = "ncus"
    northeurope        = "neu"
    norwayeast         = "noe"
    polandcentral      = "plc"
    southafricanorth   = "san"
    southcentralus     = "scus"
    southeastasia      = "sea"
    spaincentral       = "spc"
    swedencentral      = "sdc"
    switzerlandnorth   = "chn"
    uaenorth           = "uan"
    uksouth            = "uks"
    ukwest             = "ukw"
    westeurope         = "weu"
    westus             = "wus"
    westus2            = "wus2"
    westus3            = "wus3"
  }
  location_short = lookup(local.location_short_codes, local.location, substr(local.location, 0, 6))

  # "iots6-prod-weu": the readable middle of every name.
  base = "${var.workload}-${var.environment}-${local.location_short}"
  # Without separators, for resources that allow only letters and digits (Container Registry).
  base_compact = "${var.workload}${var.environment}${local.location_short}"

  # 6 hex characters of a hash of the seed: stable across runs, different per subscription. Not secret.
  suffix = substr(sha256("${var.unique_seed}/${var.workload}/${var.environment}/${local.location}"), 0, 6)

  # Names with global (or regional DNS) uniqueness carry the suffix; trimming keeps them inside their limits
  # and `trim(…, "-")` removes a dangling hyphen a cut could leave.
  key_vault_name       = "kv-${trim(substr(local.base, 0, 24 - 3 - 1 - 6), "-")}-${local.suffix}"
  container_registry   = "acr${substr(local.base_compact, 0, 50 - 3 - 6)}${local.suffix}"
  postgres_server_name = "psql-${trim(substr(local.base, 0, 63 - 5 - 1 - 6), "-")}-${local.suffix}"
  dns_label            = "${trim(substr("${var.workload}-${var.environment}", 0, 63 - 1 - 6), "-")}-${local.suffix}"
  grafana_name         = "amg-${trim(substr("${var.workload}-${var.environment}", 0, 23 - 4 - 1 - 6), "-")}-${local.suffix}"

  namespace       = "${var.workload}-${var.environment}"
  service_account = "${var.workload}-secrets"
  # The chart's Grafana (release name = workload) queries the Azure Monitor workspace with the same identity.
  grafana_service_account = "${var.workload}-grafana"

  names = {
    resource_group                  = "rg-${local.base}"
    virtual_network                 = "vnet-${local.base}"
    network_security_group          = "nsg-${local.base}"
    public_ip                       = "pip-${local.base}"
    network_interface               = "nic-${local.base}"
    virtual_machine                 = "vm-${local.base}"
    os_disk                         = "osdisk-${local.base}"
    data_disk                       = "disk-${local.base}-data"
    computer_name                   = substr("${var.workload}-${var.environment}", 0, 15)
    dns_label                       = local.dns_label
    kubernetes_cluster              = "aks-${local.base}"
    kubernetes_dns_prefix           = substr("${var.workload}-${var.environment}", 0, 54)
    kubernetes_node_resource_group  = "rg-${local.base}-aks-nodes"
    cluster_identity                = "id-${local.base}-aks"
    container_registry              = local.container_registry
    log_analytics_workspace         = "log-${local.base}"
    monitor_workspace               = "amw-${local.base}"
    data_collection_endpoint        = "dce-${local.base}"
    prometheus_data_collection_rule = "dcr-${local.base}-prometheus"
    container_insights_rule         = "dcr-${local.base}-ci"
    action_group                    = "ag-${local.base}"
    action_group_short_name         = substr("${var.workload}${var.environment}", 0, 12)
    portal_dashboard                = "dash-${local.base}"
    grafana                         = local.grafana_name
    key_vault                       = local.key_vault_name
    key_vault_private_endpoint      = "pe-${local.key_vault_name}"
    workload_identity               = "id-${local.base}-secrets"
    federated_identity_credential   = "fic-${local.namespace}-${local.service_account}"
    grafana_federated_credential    = "fic-${local.namespace}-${local.grafana_service_account}"
    postgres_server                 = local.postgres_server_name
    postgres_private_dns_zone       = "${local.postgres_server_name}.private.postgres.database.azure.com"
    postgres_subnet                 = "snet-${var.environment}-postgres"
    postgres_dns_link               = "link-${local.postgres_server_name}"
    subnet_vm                       = "snet-vm"
    subnet_aks_nodes                = "snet-aks-nodes"
    subnet_private_endpoints        = "snet-private-endpoints"
    key_vault_private_dns_link      = "link-${local.base}-vault"
    prometheus_rule_group_prefix    = "prg-${local.base}"
    kubernetes_namespace            = local.namespace
    kubernetes_service_account      = local.service_account
    federated_subject               = "system:serviceaccount:${local.namespace}:${local.service_account}"
    grafana_service_account         = local.grafana_service_account
    grafana_federated_subject       = "system:serviceaccount:${local.namespace}:${local.grafana_service_account}"
  }

  standard_tags = {
    workload    = var.workload
    environment = var.environment
    managed-by  = "terraform"
    repository  = "iotctl"
  }
  tags = merge(local.standard_tags, var.tags)
}
