# Real `terraform test` of the dashboard JSON: the expected tiles, on a grid without overlaps, bound to the given
# cluster and workspace, filtered on the iots6 namespaces, in the object-keyed form azurerm accepts.

variables {
  kubernetes_cluster_id      = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-iots6-platform-weu/providers/Microsoft.ContainerService/managedClusters/aks-iots6-platform-weu"
  log_analytics_workspace_id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-iots6-platform-weu/providers/Microsoft.OperationalInsights/workspaces/log-iots6-platform-weu"
  namespaces                 = ["iots6-dev", "iots6-staging", "iots6-prod"]
  alert_names                = ["Iots6IngestDown", "Iots6DevicesOffline"]
}

run "tiles_and_layout" {
  command = plan
  assert {
    condition     = [for t in output.tiles : t.kind] == ["markdown", "metric", "metric", "metric", "log", "log", "log"]
    error_message = "Unexpected tiles: ${jsonencode(output.tiles)}"
  }
  assert {
    # No two tiles share a cell: compare every pair's rectangles.
    condition = alltrue(flatten([
      for i, a in output.tiles : [
        for j, b in output.tiles : i >= j || (
          a.position.x + a.position.colSpan <= b.position.x || b.position.x + b.position.colSpan <= a.position.x ||
          a.position.y + a.position.rowSpan <= b.position.y || b.position.y + b.position.rowSpan <= a.position.y
        )
      ]
    ]))
    error_message = "Two tiles overlap."
  }
}

run "json_is_object_keyed_and_bound_to_the_inputs" {
  command = plan
  assert {
    condition     = length(keys(jsondecode(output.properties).lenses["0"].parts)) == 7 && contains(keys(jsondecode(output.properties).lenses["0"].parts), "6")
    error_message = "lenses/parts must be objects keyed \"0\"…\"6\"."
  }
  assert {
    condition = alltrue([
      for k in ["1", "2", "3"] : jsondecode(output.properties).lenses["0"].parts[k].metadata.settings.content.options.chart.metrics[0].resourceMetadata.id == var.kubernetes_cluster_id
    ])
    error_message = "Metric tiles are not bound to the cluster."
  }
  assert {
    condition = alltrue([
      for k in ["4", "5", "6"] : anytrue([
        for input in jsondecode(output.properties).lenses["0"].parts[k].metadata.inputs :
        input.name == "Scope" && input.value.resourceIds == [var.log_analytics_workspace_id]
      ])
    ])
    error_message = "Log tiles are not bound to the workspace."
  }
  assert {
    condition = alltrue([
      for k in ["4", "5", "6"] : anytrue([
        for input in jsondecode(output.properties).lenses["0"].parts[k].metadata.inputs :
        input.name == "Query" && strcontains(input.value, "in (\"iots6-dev\", \"iots6-staging\", \"iots6-prod\")")
      ])
    ])
    error_message = "Log tiles do not filter on the iots6 namespaces."
  }
  assert {
    condition     = strcontains(jsondecode(output.properties).lenses["0"].parts["0"].metadata.settings.content.settings.content, "`Iots6DevicesOffline`")
    error_message = "The Markdown tile does not list the alerts."
  }
}

run "grafana_link_when_managed_grafana_is_on" {
  command = plan
  variables {
    grafana_url = "https://amg-iots6-platform-abc123.weu.grafana.azure.com"
  }
  assert {
    condition     = strcontains(jsondecode(output.properties).lenses["0"].parts["0"].metadata.settings.content.settings.content, "(https://amg-iots6-platform-abc123.weu.grafana.azure.com)")
    error_message = "The Markdown tile does not link to Managed Grafana."
  }
}

run "wrong_resource_id_is_refused" {
  command = plan
  variables {
    kubernetes_cluster_id = "/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/z"
  }
  expect_failures = [var.kubernetes_cluster_id]
}
