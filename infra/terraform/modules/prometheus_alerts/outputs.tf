output "rule_groups" {
  description = "Rule groups by name: environment, namespace, description, enabled, interval (ISO 8601) and rules (alert, expression, for, severity, labels, annotations)."
  value       = local.rule_groups

  precondition {
    condition     = alltrue([for name, g in local.rule_groups : length(g.rules) <= 20])
    error_message = "Azure allows at most 20 rules per Prometheus rule group."
  }
}

output "alert_names" {
  description = "The alert names every environment's group defines (for the docs and the dashboard)."
  value       = distinct(flatten([for env, rules in local.rules : [for r in rules : r.alert]]))
}
