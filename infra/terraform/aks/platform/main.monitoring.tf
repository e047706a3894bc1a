# Monitoring of the platform: Log Analytics + Container Insights, an Azure Monitor workspace with managed
# Prometheus (data collection endpoint and rule associated with the cluster), the environments' Prometheus alert
# rule groups (modules/prometheus_alerts), an action group, the Azure Portal dashboard (modules/portal_dashboard)
# and, optionally, Azure Managed Grafana.

resource "azurerm_log_analytics_workspace" "this" {
  name                = local.names.log_analytics_workspace
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  sku                 = "PerGB2018"
  retention_in_days   = var.log_analytics_retention_days
  daily_quota_gb      = var.log_analytics_daily_quota_gb
  tags                = local.tags
}

resource "azurerm_monitor_data_collection_rule" "container_insights" {
  name                = local.names.container_insights_rule
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  description         = "Container Insights for ${local.names.kubernetes_cluster}: logs (ContainerLogV2), events and inventory"
  tags                = local.tags

  destinations {
    log_analytics {
      workspace_resource_id = azurerm_log_analytics_workspace.this.id
      name                  = local.log_destination
    }
  }

  data_flow {
    streams      = local.container_insights_streams
    destinations = [local.log_destination]
  }

  data_sources {
    extension {
      name           = "ContainerInsightsExtension"
      extension_name = "ContainerInsights"
      streams        = local.container_insights_streams
      extension_json = jsonencode({
        dataCollectionSettings = {
          interval               = "1m"
          namespaceFilteringMode = "Off"
          enableContainerLogV2   = true
        }
      })
    }
  }
}

resource "azurerm_monitor_data_collection_rule_association" "container_insights" {
  name                    = "ContainerInsightsExtension"
  target_resource_id      = azurerm_kubernetes_cluster.this.id
  data_collection_rule_id = azurerm_monitor_data_collection_rule.container_insights.id
  description             = "Container Insights of ${local.names.kubernetes_cluster}"
}

resource "azurerm_monitor_workspace" "this" {
  name                = local.names.monitor_workspace
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

resource "azurerm_monitor_data_collection_endpoint" "prometheus" {
  name                = local.names.data_collection_endpoint
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  kind                = "Linux"
  tags                = local.tags
}

resource "azurerm_monitor_data_collection_rule" "prometheus" {
  name                        = local.names.prometheus_data_collection_rule
  location                    = azurerm_resource_group.this.location
  resource_group_name         = azurerm_resource_group.this.name
  data_collection_endpoint_id = azurerm_monitor_data_collection_endpoint.prometheus.id
  kind                        = "Linux"
  description                 = "Managed Prometheus metrics of ${local.names.kubernetes_cluster} into ${local.names.monitor_workspace}"
  tags                        = local.tags

  destinations {
    monitor_account {
      monitor_account_id = azurerm_monitor_workspace.this.id
      name               = local.prometheus_destination
    }
  }

  data_flow {
    streams      = ["Microsoft-PrometheusMetrics"]
    destinations = [local.prometheus_destination]
  }

  data_sources {
    prometheus_forwarder {
      name    = "PrometheusDataSource"
      streams = ["Microsoft-PrometheusMetrics"]
    }
  }
}

resource "azurerm_monitor_data_collection_rule_association" "prometheus" {
  name                    = "dcra-${local.names.kubernetes_cluster}-prometheus"
  target_resource_id      = azurerm_kubernetes_cluster.this.id
  data_collection_rule_id = azurerm_monitor_data_collection_rule.prometheus.id
  description             = "Managed Prometheus of ${local.names.kubernetes_cluster}"
}

# The metrics add-on reads its configuration through the endpoint; Azure requires this exact association name.
resource "azurerm_monitor_data_collection_rule_association" "prometheus_endpoint" {
  name                        = "configurationAccessEndpoint"
  target_resource_id          = azurerm_kubernetes_cluster.this.id
  data_collection_endpoint_id = azurerm_monitor_data_collection_endpoint.prometheus.id
}

resource "azurerm_monitor_action_group" "this" {
  name                = local.names.action_group
  resource_group_name = azurerm_resource_group.this.name
  short_name          = local.names.action_group_short_name
  tags                = local.tags

  dynamic "email_receiver" {
    for_each = toset(var.alert_email_addresses)

    content {
      name                    = "email-${replace(email_receiver.value, "/[^A-Za-z0-9]/", "-")}"
      email_address           = email_receiver.value
      use_common_alert_schema = true
    }
  }
}

module "environment_sizing" {
  source   = "../../modules/environment_sizing"
  for_each = toset(var.environments)

  environment = each.key
  overrides   = { alerts = lookup(var.alert_overrides, each.key, {}) }
}

module "prometheus_alerts" {
  source = "../../modules/prometheus_alerts"

  rule_group_prefix = local.names.prometheus_rule_group_prefix
  runbook_base_url  = var.alert_runbook_base_url
  environments = {
    for env in var.environments : env => {
      namespace = local.namespaces[env]
      alerts    = module.environment_sizing[env].alerts
    }
  }
}

module "portal_dashboard" {
  source = "../../modules/portal_dashboard"

  title                      = "iots6 platform (${azurerm_resource_group.this.location})"
  kubernetes_cluster_id      = azurerm_kubernetes_cluster.this.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id
  namespaces                 = [for env in var.environments : local.namespaces[env]]
  alert_names                = module.prometheus_alerts.alert_names
  grafana_url                = var.managed_grafana_enabled ? azurerm_dashboard_grafana.this[0].endpoint : null
}

resource "azurerm_portal_dashboard" "this" {
  name                 = local.names.portal_dashboard
  location             = azurerm_resource_group.this.location
  resource_group_name  = azurerm_resource_group.this.name
  dashboard_properties = module.portal_dashboard.properties
  # The portal shows the `hidden-title` tag as the dashboard's title.
  tags = merge(local.tags, { "hidden-title" = "iots6 platform" })
}

resource "azurerm_dashboard_grafana" "this" {
  count = var.managed_grafana_enabled ? 1 : 0

  name                              = local.names.grafana
  location                          = azurerm_resource_group.this.location
  resource_group_name               = azurerm_resource_group.this.name
  grafana_major_version             = "11"
  sku                               = "Standard"
  api_key_enabled                   = false
  deterministic_outbound_ip_enabled = false
  public_network_access_enabled     = true
  tags                              = local.tags

  identity {
    type = "SystemAssigned"
  }

  azure_monitor_workspace_integrations {
    resource_id = azurerm_monitor_workspace.this.id
  }
}

# Managed Grafana reads Prometheus data from the workspace with its own identity.
resource "azurerm_role_assignment" "grafana_monitor_reader" {
  count = var.managed_grafana_enabled ? 1 : 0

  scope                            = azurerm_monitor_workspace.this.id
  role_definition_name             = "Monitoring Data Reader"
  principal_id                     = azurerm_dashboard_grafana.this[0].identity[0].principal_id
  skip_service_principal_aad_check = true
}

resource "azurerm_role_assignment" "grafana_admins" {
  for_each = var.managed_grafana_enabled ? toset(var.grafana_admin_object_ids) : toset([])

  scope                = azurerm_dashboard_grafana.this[0].id
  role_definition_name = "Grafana Admin"
  principal_id         = each.value
}
