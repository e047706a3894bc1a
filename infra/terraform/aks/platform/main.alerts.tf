# The environments' Prometheus alert rule groups (rules from modules/prometheus_alerts), evaluated by managed
# Prometheus in the Azure Monitor workspace, notifying the action group.
#
# This resource sits alone in its file because the rule argument `for` is a keyword to the HCL parser checkov
# 3.3 uses (bc-python-hcl2 0.4.3): checkov reports this one file as a parsing error and scans all the others
# (tests/infra/terraform/test_checkov.py expects exactly that). The rule groups have no checkov checks anyway.

resource "azurerm_monitor_alert_prometheus_rule_group" "this" {
  for_each = module.prometheus_alerts.rule_groups

  name                = each.key
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  cluster_name        = azurerm_kubernetes_cluster.this.name
  description         = each.value.description
  rule_group_enabled  = each.value.enabled
  interval            = each.value.interval
  scopes              = [azurerm_monitor_workspace.this.id, azurerm_kubernetes_cluster.this.id]
  tags                = local.tags

  dynamic "rule" {
    for_each = each.value.rules

    content {
      alert       = rule.value.alert
      enabled     = true
      expression  = rule.value.expression
      for         = rule.value.for
      severity    = rule.value.severity
      labels      = rule.value.labels
      annotations = rule.value.annotations

      action {
        action_group_id = azurerm_monitor_action_group.this.id
      }

      alert_resolution {
        auto_resolved   = true
        time_to_resolve = "PT10M"
      }
    }
  }

  depends_on = [azurerm_monitor_data_collection_rule_association.prometheus]
}
