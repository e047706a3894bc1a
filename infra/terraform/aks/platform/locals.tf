locals {
  names = module.naming.names
  tags  = module.naming.tags

  # The namespaces the environments deploy into (DECISIONS §7: iots6-dev, iots6-staging, iots6-prod).
  namespaces = { for env in var.environments : env => module.environment_naming[env].kubernetes_namespace }

  # Streams Container Insights collects (ContainerLogV2 is the schema the dashboard's log tiles query).
  container_insights_streams = [
    "Microsoft-ContainerLogV2",
    "Microsoft-KubeEvents",
    "Microsoft-KubePodInventory",
    "Microsoft-KubeNodeInventory",
    "Microsoft-KubePVInventory",
    "Microsoft-KubeServices",
    "Microsoft-KubeMonAgentEvents",
    "Microsoft-InsightsMetrics",
    "Microsoft-ContainerInventory",
    "Microsoft-ContainerNodeInventory",
    "Microsoft-Perf",
  ]

  prometheus_destination = "MonitoringAccount1"
  log_destination        = "ciworkspace"
}
