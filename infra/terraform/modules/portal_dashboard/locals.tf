locals {
  namespace_list = join(", ", [for n in var.namespaces : "\"${n}\""])

  markdown = join("\n", concat(
    [
      "## ${var.title}",
      "",
      "Namespaces: ${join(", ", [for n in var.namespaces : "`${n}`"])}.",
      "",
      var.grafana_url == null
      ? "Dashboards: the in-cluster Grafana of each environment (`kubectl -n <namespace> port-forward svc/grafana 3000`), with the same ingest, fleet and device dashboards as the Compose stack."
      : "Dashboards: [Azure Managed Grafana](${var.grafana_url}) and the in-cluster Grafana of each environment.",
      "",
      "Prometheus alerts (Azure Monitor > Alerts), one rule group per environment:",
    ],
    [for a in var.alert_names : "- `${a}`"],
    ["", "Runbooks: docs/deploy-aks.md, section \"Alert rules\"."],
  ))

  metric_tiles = [
    { title = "Node CPU usage %", metric = "node_cpu_usage_percentage", display = "CPU Usage Percentage", aggregation = 4 },
    { title = "Node memory working set %", metric = "node_memory_working_set_percentage", display = "Memory Working Set Percentage", aggregation = 4 },
    { title = "Pods by phase", metric = "kube_pod_status_phase", display = "Number of pods by phase", aggregation = 4 },
  ]

  log_tiles = [
    {
      title   = "Container restarts (iots6 namespaces)"
      control = "AnalyticsGrid"
      chart   = null
      query   = "KubePodInventory\n| where Namespace in (${local.namespace_list})\n| summarize Restarts = max(ContainerRestartCount) by Namespace, Pod = Name, ContainerName\n| where Restarts > 0\n| order by Restarts desc\n"
    },
    {
      title   = "Error log lines per namespace"
      control = "FrameControlChart"
      chart   = "StackedColumn"
      query   = "ContainerLogV2\n| where PodNamespace in (${local.namespace_list})\n| where LogLevel in (\"error\", \"critical\") or LogMessage has \"ERROR\"\n| summarize Lines = count() by bin(TimeGenerated, 15m), PodNamespace\n| render columnchart\n"
    },
    {
      title   = "Warning events (BackOff, OOM, probes)"
      control = "AnalyticsGrid"
      chart   = null
      query   = "KubeEvents\n| where Namespace in (${local.namespace_list})\n| where Reason in (\"BackOff\", \"Failed\", \"OOMKilling\", \"Unhealthy\", \"FailedMount\", \"FailedScheduling\")\n| summarize Count = count(), Last = max(TimeGenerated) by Namespace, Reason, Object = Name\n| order by Last desc\n"
    },
  ]

  # Grid: 6 x 4 cells per tile, three tiles per row. Row 0: Markdown + two metric charts; row 1: one metric
  # chart + two log tiles; row 2: the last log tile.
  tile_specs = concat(
    [{ kind = "markdown", title = var.title }],
    [for t in local.metric_tiles : merge(t, { kind = "metric" })],
    [for t in local.log_tiles : merge(t, { kind = "log" })],
  )
  positions = [for i, _ in local.tile_specs : { x = 6 * (i % 3), y = 4 * floor(i / 3), colSpan = 6, rowSpan = 4 }]

  markdown_part = {
    position = local.positions[0]
    metadata = {
      inputs = []
      type   = "Extension/HubsExtension/PartType/MarkdownPart"
      settings = {
        content = {
          settings = { content = local.markdown, title = "", subtitle = "", markdownSource = 1 }
        }
      }
    }
  }

  metric_parts = [
    for i, t in local.metric_tiles : {
      position = local.positions[1 + i]
      metadata = {
        inputs = [{ name = "options", isOptional = true }, { name = "sharedTimeRange", isOptional = true }]
        type   = "Extension/HubsExtension/PartType/MonitorChartPart"
        settings = {
          content = {
            options = {
              chart = {
                metrics = [{
                  resourceMetadata    = { id = var.kubernetes_cluster_id }
                  name                = t.metric
                  aggregationType     = t.aggregation
                  namespace           = "microsoft.containerservice/managedclusters"
                  metricVisualization = { displayName = t.display }
                }]
                title     = t.title
                titleKind = 2
                visualization = {
                  chartType           = 2
                  legendVisualization = { isVisible = true, position = 2, hideSubtitle = false }
                  axisVisualization = {
                    x = { isVisible = true, axisType = 2 }
                    y = { isVisible = true, axisType = 1 }
                  }
                }
              }
            }
          }
        }
      }
    }
  ]

  log_parts = [
    for i, t in local.log_tiles : {
      position = local.positions[1 + length(local.metric_tiles) + i]
      metadata = {
        inputs = concat(
          [
            { name = "resourceTypeMode", isOptional = true },
            { name = "ComponentId", isOptional = true },
            { name = "Scope", value = { resourceIds = [var.log_analytics_workspace_id] }, isOptional = true },
            { name = "PartId", value = uuidv5("url", "iots6:${var.kubernetes_cluster_id}:${t.title}"), isOptional = true },
            { name = "Version", value = "2.0", isOptional = true },
            { name = "TimeRange", value = "P1D", isOptional = true },
            { name = "DashboardId", isOptional = true },
            { name = "DraftRequestParameters", isOptional = true },
            { name = "Query", value = t.query, isOptional = true },
            { name = "ControlType", value = t.control, isOptional = true },
            { name = "PartTitle", value = t.title, isOptional = true },
            { name = "IsQueryContainTimeRange", value = false, isOptional = true },
          ],
          t.chart == null ? [] : [{ name = "SpecificChart", value = t.chart, isOptional = true }],
        )
        type     = "Extension/Microsoft_OperationsManagementSuite_Workspace/PartType/LogsDashboardPart"
        settings = { content = { PartTitle = t.title } }
      }
    }
  ]

  parts = concat([local.markdown_part], local.metric_parts, local.log_parts)

  # azurerm_portal_dashboard wants the `properties` of a portal export with `lenses` and `parts` as objects
  # keyed "0", "1", … (hashicorp/terraform-provider-azurerm#27117), not arrays.
  properties = {
    lenses = {
      "0" = {
        order = 0
        parts = { for i, p in local.parts : tostring(i) => p }
      }
    }
    metadata = {
      model = {
        timeRange = {
          value = { relative = { duration = 24, timeUnit = 1 } }
          type  = "MsPortalFx.Composition.Configuration.ValueTypes.TimeRange"
        }
        filterLocale = { value = "en-us" }
        filters = {
          value = {
            MsPortalFx_TimeRange = {
              model           = { format = "utc", granularity = "auto", relative = "24h" }
              displayCache    = { name = "UTC Time", value = "Past 24 hours" }
              filteredPartIds = []
            }
          }
        }
      }
    }
  }
}
