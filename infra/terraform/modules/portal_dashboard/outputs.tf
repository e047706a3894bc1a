output "properties" {
  description = "The dashboard JSON for `azurerm_portal_dashboard.dashboard_properties`."
  value       = jsonencode(local.properties)
}

output "tiles" {
  description = "The tiles in order: kind (markdown, metric, log), title and grid position."
  value       = [for i, t in local.tile_specs : { kind = t.kind, title = t.title, position = local.positions[i] }]
}
