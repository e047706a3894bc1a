output "names" {
  description = "Every resource name the roots use, keyed by role (see locals.tf for the full list)."
  value       = local.names
}

output "location" {
  description = "The region, normalised (`West Europe` -> `westeurope`)."
  value       = local.location
}

output "location_short" {
  description = "The short region code used inside names (e.g. `weu`)."
  value       = local.location_short
}

output "suffix" {
  description = "The 6 hex characters derived from `unique_seed` that make global names unique."
  value       = local.suffix
}

output "kubernetes_namespace" {
  description = "The Kubernetes namespace of this environment (`<workload>-<environment>`, e.g. `iots6-prod`)."
  value       = local.namespace
}

output "kubernetes_service_account" {
  description = "The service account the chart creates for External Secrets (`<workload>-secrets`)."
  value       = local.service_account
}

output "federated_subject" {
  description = "Subject of the federated identity credential: `system:serviceaccount:<namespace>:<service account>`."
  value       = local.names.federated_subject
}

output "grafana_service_account" {
  description = "The service account of the chart's Grafana (`<workload>-grafana`), which reads the Azure Monitor workspace with the environment's identity."
  value       = local.grafana_service_account
}

output "grafana_federated_subject" {
  description = "Subject of Grafana's federated identity credential: `system:serviceaccount:<namespace>:<workload>-grafana`."
  value       = local.names.grafana_federated_subject
}

output "tags" {
  description = "Standard tags merged with `var.tags`; every taggable resource gets them."
  value       = local.tags
}
