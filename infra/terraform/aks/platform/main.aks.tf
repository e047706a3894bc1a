# The AKS cluster: OIDC issuer + workload identity (External Secrets reads each environment's Key Vault with a
# federated identity), Azure CNI overlay with Cilium, a system and a user node pool, Azure RBAC for Kubernetes
# with local accounts disabled, Container Insights, managed Prometheus and the application routing add-on.

# A user-assigned control-plane identity exists before the cluster, so it can be given Network Contributor on
# the nodes' subnet (LoadBalancer Services place their frontends there) before AKS needs it.
resource "azurerm_user_assigned_identity" "cluster" {
  name                = local.names.cluster_identity
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

resource "azurerm_role_assignment" "cluster_network" {
  scope                            = azurerm_subnet.aks_nodes.id
  role_definition_name             = "Network Contributor"
  principal_id                     = azurerm_user_assigned_identity.cluster.principal_id
  skip_service_principal_aad_check = true
}

resource "azurerm_kubernetes_cluster" "this" {
  #checkov:skip=CKV_AZURE_6:Authorized IP ranges are set, from the required variable api_server_authorized_ip_ranges whose validation refuses an empty list and 0.0.0.0/0; checkov cannot see a value that has no default.
  #checkov:skip=CKV_AZURE_115:A private API server would need a jump host or VPN for `iotctl deploy aks` from the operator's laptop; the public endpoint is restricted to api_server_authorized_ip_ranges and requires Entra ID (local accounts disabled).
  #checkov:skip=CKV_AZURE_117:Node OS disks are ephemeral (nothing persists on them) and managed data disks are encrypted at rest with platform keys; a disk encryption set (customer-managed keys) is left to operators who need it.
  #checkov:skip=CKV_AZURE_172:The Secrets Store CSI driver add-on is not used: secrets reach pods through External Secrets (per-namespace SecretStore with workload identity, DECISIONS §7), which refreshes on its own interval.
  #checkov:skip=CKV_AZURE_227:Encryption at host needs the subscription feature Microsoft.Compute/EncryptionAtHost registered first; it is the variable host_encryption_enabled (off by default, docs/deploy-aks.md says how to turn it on).
  name                = local.names.kubernetes_cluster
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  dns_prefix          = local.names.kubernetes_dns_prefix
  node_resource_group = local.names.kubernetes_node_resource_group
  kubernetes_version  = var.kubernetes_version
  sku_tier            = var.sku_tier

  oidc_issuer_enabled       = true
  workload_identity_enabled = true

  role_based_access_control_enabled = true
  local_account_disabled            = true
  azure_policy_enabled              = true

  automatic_upgrade_channel    = "patch"
  node_os_upgrade_channel      = "NodeImage"
  image_cleaner_enabled        = true
  image_cleaner_interval_hours = 48

  azure_active_directory_role_based_access_control {
    azure_rbac_enabled     = true
    tenant_id              = data.azurerm_client_config.current.tenant_id
    admin_group_object_ids = var.admin_group_object_ids
  }

  api_server_access_profile {
    authorized_ip_ranges = var.api_server_authorized_ip_ranges
  }

  default_node_pool {
    name                         = "system"
    temporary_name_for_rotation  = "systemtmp"
    vm_size                      = var.system_node_pool.vm_size
    auto_scaling_enabled         = true
    min_count                    = var.system_node_pool.min_count
    max_count                    = var.system_node_pool.max_count
    zones                        = var.system_node_pool.zones
    vnet_subnet_id               = azurerm_subnet.aks_nodes.id
    only_critical_addons_enabled = true
    os_sku                       = "AzureLinux"
    os_disk_type                 = "Ephemeral"
    os_disk_size_gb              = var.system_node_pool.os_disk_size_gb
    max_pods                     = 110
    host_encryption_enabled      = var.host_encryption_enabled
    node_public_ip_enabled       = false
    tags                         = local.tags

    upgrade_settings {
      max_surge = "33%"
    }
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.cluster.id]
  }

  network_profile {
    network_plugin      = "azure"
    network_plugin_mode = "overlay"
    network_data_plane  = "cilium"
    network_policy      = "cilium"
    pod_cidr            = module.network_plan.kubernetes.pod_cidr
    service_cidr        = module.network_plan.kubernetes.service_cidr
    dns_service_ip      = module.network_plan.kubernetes.dns_service_ip
    load_balancer_sku   = "standard"
    outbound_type       = "loadBalancer"
  }

  # Container Insights with managed identity auth (the data collection rule is in main.monitoring.tf).
  oms_agent {
    log_analytics_workspace_id      = azurerm_log_analytics_workspace.this.id
    msi_auth_for_monitoring_enabled = true
  }

  # Managed Prometheus (ama-metrics); its data collection rule and endpoint are in main.monitoring.tf.
  monitor_metrics {}

  # The application routing add-on (managed NGINX in `app-routing-system`): the ingress class
  # `webapprouting.kubernetes.azure.com` of the chart's config server (and optional Grafana) Ingress.
  web_app_routing {
    dns_zone_ids = var.app_routing_dns_zone_ids
  }

  tags = local.tags

  lifecycle {
    # The cluster autoscaler owns the node count.
    ignore_changes = [default_node_pool[0].node_count]
  }

  depends_on = [azurerm_role_assignment.cluster_network]
}

resource "azurerm_kubernetes_cluster_node_pool" "user" {
  #checkov:skip=CKV_AZURE_227:Encryption at host needs the subscription feature Microsoft.Compute/EncryptionAtHost registered first; it is the variable host_encryption_enabled (off by default).
  name                    = "user"
  kubernetes_cluster_id   = azurerm_kubernetes_cluster.this.id
  mode                    = "User"
  vm_size                 = var.user_node_pool.vm_size
  auto_scaling_enabled    = true
  min_count               = var.user_node_pool.min_count
  max_count               = var.user_node_pool.max_count
  zones                   = var.user_node_pool.zones
  vnet_subnet_id          = azurerm_subnet.aks_nodes.id
  os_sku                  = "AzureLinux"
  os_disk_type            = "Ephemeral"
  os_disk_size_gb         = var.user_node_pool.os_disk_size_gb
  max_pods                = 110
  host_encryption_enabled = var.host_encryption_enabled
  node_public_ip_enabled  = false
  node_labels             = { "iots6.io/pool" = "user" }
  tags                    = local.tags

  upgrade_settings {
    max_surge = "33%"
  }

  lifecycle {
    ignore_changes = [node_count]
  }
}

# The operator who applies this root can install ArgoCD and ESO right after (iotctl deploy aks).
resource "azurerm_role_assignment" "deployer_cluster_admin" {
  count = var.grant_deployer_cluster_admin ? 1 : 0

  scope                = azurerm_kubernetes_cluster.this.id
  role_definition_name = "Azure Kubernetes Service RBAC Cluster Admin"
  principal_id         = data.azurerm_client_config.current.object_id
}

resource "azurerm_container_registry" "this" {
  #checkov:skip=CKV_AZURE_139:The registry must accept pushes from hosted CI runners (GitHub Actions) whose addresses are not fixed; pulls by the cluster use its kubelet identity (AcrPull), admin user and anonymous pull are off.
  #checkov:skip=CKV_AZURE_163:Vulnerability scanning is Microsoft Defender for Containers, a subscription-level plan (billed per image); enable it there, not per registry.
  #checkov:skip=CKV_AZURE_164:Content trust (signed images) is a Premium feature being retired by Azure in favour of Notation; image digests pin prod (values-prod.yaml).
  #checkov:skip=CKV_AZURE_165:Geo-replication is Premium-only; the platform runs in one region.
  #checkov:skip=CKV_AZURE_166:Quarantine is a Premium preview feature; images come only from this repository's CI.
  #checkov:skip=CKV_AZURE_167:Retention policies for untagged manifests are Premium-only; CI pushes tagged images.
  #checkov:skip=CKV_AZURE_233:Zone redundancy is Premium-only; a registry outage stops new pulls, not running pods.
  #checkov:skip=CKV_AZURE_237:Dedicated data endpoints are Premium-only and matter only behind an egress firewall, which this platform does not have.
  name                          = local.names.container_registry
  location                      = azurerm_resource_group.this.location
  resource_group_name           = azurerm_resource_group.this.name
  sku                           = var.container_registry_sku
  admin_enabled                 = false
  anonymous_pull_enabled        = false
  public_network_access_enabled = true
  tags                          = local.tags
}

# Nodes pull images with the kubelet identity: no image pull secrets anywhere.
resource "azurerm_role_assignment" "kubelet_acr_pull" {
  scope                            = azurerm_container_registry.this.id
  role_definition_name             = "AcrPull"
  principal_id                     = azurerm_kubernetes_cluster.this.kubelet_identity[0].object_id
  skip_service_principal_aad_check = true
}
