variable "environments" {
  type = map(object({
    namespace = string
    alerts = object({
      enabled                    = bool
      ingest_down_minutes        = number
      config_server_down_minutes = number
      no_rows_minutes            = number
      commit_lag_p99_seconds     = number
      dead_letters_per_15m       = number
      traffic_drop_ratio         = number
    })
  }))
  description = <<-EOT
    One entry per environment (key: `dev`, `staging`, `prod`): its Kubernetes namespace and its alert settings
    (the `alerts` output of modules/environment_sizing). Each environment gets its own rule group, so one can be
    silenced or tuned without touching the others.
  EOT
  nullable    = false

  validation {
    condition     = alltrue([for env, e in var.environments : can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", e.namespace))])
    error_message = "Every `namespace` must be a Kubernetes namespace name (lower-case letters, digits, hyphens)."
  }
  validation {
    condition     = alltrue([for env, e in var.environments : e.alerts.ingest_down_minutes >= 1 && e.alerts.config_server_down_minutes >= 1 && e.alerts.no_rows_minutes >= 1 && e.alerts.commit_lag_p99_seconds > 0 && e.alerts.dead_letters_per_15m >= 0])
    error_message = "Alert thresholds must be positive (minutes >= 1, lag > 0 s, dead letters >= 0)."
  }
  validation {
    condition     = alltrue([for env, e in var.environments : e.alerts.traffic_drop_ratio > 0 && e.alerts.traffic_drop_ratio < 1])
    error_message = "`traffic_drop_ratio` must be between 0 and 1."
  }
}

variable "rule_group_prefix" {
  type        = string
  description = "Prefix of the rule group names; the environment is appended (e.g. `prg-iots6-platform-weu` -> `prg-iots6-platform-weu-prod`)."
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9][-A-Za-z0-9_.]{0,200}$", var.rule_group_prefix))
    error_message = "`rule_group_prefix` may contain letters, digits, '-', '_' and '.' only."
  }
}

variable "runbook_base_url" {
  type        = string
  description = "Optional URL of your published copy of docs/deploy-aks.md; when set, every alert gets a `runbook_url` annotation of this URL plus the rule's anchor. Every alert always carries `runbook` = `docs/deploy-aks.md#<anchor>`."
  default     = null

  validation {
    condition     = var.runbook_base_url == null || can(regex("^https://", var.runbook_base_url))
    error_message = "`runbook_base_url` must be an https:// URL (or null)."
  }
}
