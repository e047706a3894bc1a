# The Azure Portal dashboard of the platform, as the JSON `azurerm_portal_dashboard.dashboard_properties` takes.
# Tiles: a Markdown overview (namespaces, alerts, where Grafana is), AKS node CPU and memory and pods by phase
# (platform metrics of the cluster), and three Container Insights log tiles over the iots6 namespaces
# (container restarts, error log lines, warning events). The ingest's own Prometheus metrics are shown by
# Grafana and watched by the alert rules; portal tiles cannot run PromQL. No resources.
