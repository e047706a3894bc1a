terraform {
  # Provider-free: builds the Prometheus alert rules; the platform root turns them into
  # azurerm_monitor_alert_prometheus_rule_group resources.
  required_version = ">= 1.9"
}
