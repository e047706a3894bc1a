output "resource_group_name" {
  description = "Resource group of the shared platform."
  value       = azurerm_resource_group.this.name
}

output "location" {
  description = "Region of the platform (the environments use the same)."
  value       = azurerm_resource_group.this.location
}

output "kubernetes_cluster_name" {
  description = "Name of the AKS cluster."
  value       = azurerm_kubernetes_cluster.this.name
}

output "kubernetes_cluster_id" {
  description = "Resource id of the AKS cluster."
  value       = azurerm_kubernetes_cluster.this.id
}

output "kubernetes_api_server_url" {
  description = "The API server's URL. Local accounts are disabled: authenticate with an Entra ID token for the AKS server application (6dae42f8-4368-4678-94ff-3960e28e3630)."
  value       = "https://${azurerm_kubernetes_cluster.this.fqdn}"
}

output "oidc_issuer_url" {
  description = "The cluster's OIDC issuer; every federated identity credential of the environments must name exactly this issuer."
  value       = azurerm_kubernetes_cluster.this.oidc_issuer_url
}

output "kubelet_identity_object_id" {
  description = "Object id of the kubelet identity (holds AcrPull on the registry)."
  value       = azurerm_kubernetes_cluster.this.kubelet_identity[0].object_id
}

output "container_registry_name" {
  description = "Name of the container registry (`az acr login --name …`)."
  value       = azurerm_container_registry.this.name
}

output "container_registry_login_server" {
  description = "Registry host for image references `<login server>/iots6-ingest:<tag>`."
  value       = azurerm_container_registry.this.login_server
}

output "log_analytics_workspace_id" {
  description = "Resource id of the Log Analytics workspace (Container Insights)."
  value       = azurerm_log_analytics_workspace.this.id
}

output "monitor_workspace_id" {
  description = "Resource id of the Azure Monitor workspace (managed Prometheus)."
  value       = azurerm_monitor_workspace.this.id
}

output "prometheus_query_endpoint" {
  description = "PromQL query endpoint of the Azure Monitor workspace."
  value       = azurerm_monitor_workspace.this.query_endpoint
}

output "prometheus_rule_groups" {
  description = "Names of the Prometheus alert rule groups, one per environment."
  value       = { for name, g in module.prometheus_alerts.rule_groups : g.environment => name }
}

output "portal_dashboard_id" {
  description = "Resource id of the Azure Portal dashboard."
  value       = azurerm_portal_dashboard.this.id
}

output "managed_grafana_endpoint" {
  description = "URL of Azure Managed Grafana, or null when it is not enabled."
  value       = var.managed_grafana_enabled ? azurerm_dashboard_grafana.this[0].endpoint : null
}

output "namespaces" {
  description = "Kubernetes namespace of each environment."
  value       = local.namespaces
}

output "environment_inputs" {
  description = <<-EOT
    What ../environment needs from the platform, per environment: write `environment_inputs[<env>]` as the
    `platform` variable of that environment (`iotctl deploy aks` does; by hand:
    `terraform output -json environment_inputs | jq '{platform: .prod}' > ../environment/platform.auto.tfvars.json`).
  EOT
  value = {
    for env in var.environments : env => {
      location                      = azurerm_resource_group.this.location
      resource_group_name           = azurerm_resource_group.this.name
      kubernetes_cluster_name       = azurerm_kubernetes_cluster.this.name
      oidc_issuer_url               = azurerm_kubernetes_cluster.this.oidc_issuer_url
      virtual_network_id            = azurerm_virtual_network.this.id
      private_endpoints_subnet_id   = azurerm_subnet.private_endpoints.id
      key_vault_private_dns_zone_id = azurerm_private_dns_zone.key_vault.id
      postgres_subnet_id            = azurerm_subnet.postgres[env].id
      postgres_subnet_cidr          = module.network_plan.postgres_subnets[env]
      monitor_workspace_id          = azurerm_monitor_workspace.this.id
    }
  }
}
