variable "title" {
  type        = string
  description = "Heading of the dashboard's first (Markdown) tile."
  default     = "iots6 platform"
  nullable    = false
}

variable "kubernetes_cluster_id" {
  type        = string
  description = "Resource id of the AKS cluster whose platform metrics (node CPU/memory, pods) the chart tiles show."
  nullable    = false

  validation {
    condition     = can(regex("(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.ContainerService/managedClusters/[^/]+$", var.kubernetes_cluster_id))
    error_message = "`kubernetes_cluster_id` must be an AKS resource id (/subscriptions/…/providers/Microsoft.ContainerService/managedClusters/NAME)."
  }
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Resource id of the Log Analytics workspace Container Insights writes to; the log tiles query it."
  nullable    = false

  validation {
    condition     = can(regex("(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\.OperationalInsights/workspaces/[^/]+$", var.log_analytics_workspace_id))
    error_message = "`log_analytics_workspace_id` must be a Log Analytics workspace resource id."
  }
}

variable "namespaces" {
  type        = list(string)
  description = "The environments' Kubernetes namespaces the log tiles filter on (e.g. [\"iots6-dev\", \"iots6-staging\", \"iots6-prod\"])."
  nullable    = false

  validation {
    condition     = length(var.namespaces) > 0 && alltrue([for n in var.namespaces : can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", n))])
    error_message = "`namespaces` must list at least one Kubernetes namespace name."
  }
}

variable "alert_names" {
  type        = list(string)
  description = "Names of the Prometheus alerts (from modules/prometheus_alerts), listed on the Markdown tile."
  default     = []
  nullable    = false
}

variable "grafana_url" {
  type        = string
  description = "URL of Azure Managed Grafana when it is enabled; the Markdown tile links to it. Null: the tile explains how to reach the in-cluster Grafana."
  default     = null
}
