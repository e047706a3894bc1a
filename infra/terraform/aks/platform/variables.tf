variable "subscription_id" {
  type        = string
  description = "Azure subscription to deploy into. Null: taken from ARM_SUBSCRIPTION_ID."
  default     = null
}

variable "location" {
  type        = string
  description = "Azure region of the platform, e.g. `westeurope`. The environments use the same region."
  nullable    = false
}

variable "environments" {
  type        = list(string)
  description = "The environments the cluster hosts, in a fixed order (a PostgreSQL subnet is reserved per entry by its index: append, never reorder)."
  default     = ["dev", "staging", "prod"]
  nullable    = false

  validation {
    condition     = length(var.environments) > 0 && alltrue([for e in var.environments : contains(["dev", "staging", "prod"], e)]) && length(distinct(var.environments)) == length(var.environments)
    error_message = "`environments` must list distinct names among \"dev\", \"staging\", \"prod\"."
  }
}

variable "address_space" {
  type        = string
  description = "Private IPv4 range of the platform's virtual network (nodes, private endpoints, one PostgreSQL subnet per environment)."
  default     = "10.40.0.0/16"
  nullable    = false
}

variable "pod_cidr" {
  type        = string
  description = "Azure CNI overlay range for pods (not part of the VNet)."
  default     = "10.244.0.0/16"
  nullable    = false
}

variable "service_cidr" {
  type        = string
  description = "Range for Kubernetes service IPs (not part of the VNet)."
  default     = "10.0.0.0/16"
  nullable    = false
}

variable "kubernetes_version" {
  type        = string
  description = <<-EOT
    Kubernetes minor version of the cluster. Patches follow automatically (automatic_upgrade_channel = patch).
    The default is the minor AKS creates by default (`az aks get-versions --location <region>` shows it); the
    chart's objects are validated against this same version's schemas (tests/infra/k8s reads this default), so
    change both by changing it here. Null takes whatever AKS's default is at apply time.
  EOT
  default     = "1.35"

  validation {
    condition     = var.kubernetes_version == null || can(regex("^1\\.[0-9]{2}$", coalesce(var.kubernetes_version, "1.35")))
    error_message = "`kubernetes_version` must be a minor version such as \"1.35\" (or null)."
  }
}

variable "app_routing_dns_zone_ids" {
  type        = list(string)
  description = "Azure DNS zones the application routing add-on (the chart's ingress class `webapprouting.kubernetes.azure.com`) may write records to for the config server's host. Empty: manage the DNS record yourself (point it at the add-on's load balancer)."
  default     = []
  nullable    = false
}

variable "sku_tier" {
  type        = string
  description = "AKS control plane tier: `Standard` (financially backed API server SLA, for prod) or `Free` (no SLA; a cheaper cluster for trials)."
  default     = "Standard"
  nullable    = false

  validation {
    condition     = contains(["Free", "Standard", "Premium"], var.sku_tier)
    error_message = "`sku_tier` must be \"Free\", \"Standard\" or \"Premium\"."
  }
}

variable "system_node_pool" {
  type = object({
    vm_size         = optional(string, "Standard_D2ds_v5")
    min_count       = optional(number, 2)
    max_count       = optional(number, 3)
    os_disk_size_gb = optional(number, 64)
    zones           = optional(list(string), ["1", "2", "3"])
  })
  description = "System node pool, tainted CriticalAddonsOnly so only kube-system add-ons run there (ArgoCD, ESO and the iots6 workloads go to the user pool). Ephemeral OS disks need a size whose local disk holds `os_disk_size_gb` (D2ds_v5: 75 GiB)."
  default     = {}
  nullable    = false

  validation {
    condition     = var.system_node_pool.min_count >= 1 && var.system_node_pool.max_count >= var.system_node_pool.min_count && var.system_node_pool.max_count <= 100
    error_message = "`system_node_pool` needs 1 <= min_count <= max_count <= 100."
  }
}

variable "user_node_pool" {
  type = object({
    vm_size         = optional(string, "Standard_D4ds_v5")
    min_count       = optional(number, 1)
    max_count       = optional(number, 4)
    os_disk_size_gb = optional(number, 128)
    zones           = optional(list(string), ["1", "2", "3"])
  })
  description = "User node pool where the iots6 workloads of all environments run (broker, ingest, config server, Grafana, dev's PostgreSQL)."
  default     = {}
  nullable    = false

  validation {
    condition     = var.user_node_pool.min_count >= 0 && var.user_node_pool.max_count >= max(var.user_node_pool.min_count, 1) && var.user_node_pool.max_count <= 100
    error_message = "`user_node_pool` needs 0 <= min_count <= max_count, 1 <= max_count <= 100."
  }
}

variable "host_encryption_enabled" {
  type        = bool
  description = "Encryption at host for the node pools. Needs the subscription feature Microsoft.Compute/EncryptionAtHost registered first."
  default     = false
  nullable    = false
}

variable "api_server_authorized_ip_ranges" {
  type        = list(string)
  description = "CIDRs allowed to reach the Kubernetes API server: the operator's address (iotctl detects it) and CI runners that apply manifests. GitOps pulls from inside, so ArgoCD needs no entry."
  nullable    = false

  validation {
    condition     = length(var.api_server_authorized_ip_ranges) > 0 && alltrue([for c in var.api_server_authorized_ip_ranges : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "`api_server_authorized_ip_ranges` must list CIDRs (at least one, never 0.0.0.0/0)."
  }
}

variable "admin_group_object_ids" {
  type        = list(string)
  description = "Entra ID groups whose members are cluster admins (Azure RBAC for Kubernetes; local accounts are disabled)."
  default     = []
  nullable    = false
}

variable "grant_deployer_cluster_admin" {
  type        = bool
  description = "Give the identity running Terraform the `Azure Kubernetes Service RBAC Cluster Admin` role on the cluster, so `iotctl deploy aks` can install ArgoCD and ESO right after."
  default     = true
  nullable    = false
}

variable "container_registry_sku" {
  type        = string
  description = "Azure Container Registry tier. Standard suffices for a few images; Premium adds private endpoints, geo-replication and retention policies."
  default     = "Standard"
  nullable    = false

  validation {
    condition     = contains(["Basic", "Standard", "Premium"], var.container_registry_sku)
    error_message = "`container_registry_sku` must be Basic, Standard or Premium."
  }
}

variable "log_analytics_retention_days" {
  type        = number
  description = "Retention of Container Insights logs in days."
  default     = 30
  nullable    = false

  validation {
    condition     = var.log_analytics_retention_days >= 30 && var.log_analytics_retention_days <= 730
    error_message = "`log_analytics_retention_days` must be between 30 and 730."
  }
}

variable "log_analytics_daily_quota_gb" {
  type        = number
  description = "Daily ingestion cap of the Log Analytics workspace in GB (-1: no cap). Caps the Container Insights bill if a pod floods its log."
  default     = 5
  nullable    = false
}

variable "alert_email_addresses" {
  type        = list(string)
  description = "Who the Prometheus alerts email (action group receivers). Empty: alerts only show in Azure Monitor."
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for a in var.alert_email_addresses : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", a))])
    error_message = "Every `alert_email_addresses` entry must be an e-mail address."
  }
}

variable "alert_overrides" {
  type = map(object({
    enabled                    = optional(bool)
    ingest_down_minutes        = optional(number)
    config_server_down_minutes = optional(number)
    no_rows_minutes            = optional(number)
    commit_lag_p99_seconds     = optional(number)
    dead_letters_per_15m       = optional(number)
    traffic_drop_ratio         = optional(number)
  }))
  description = "Per-environment alert settings replacing the defaults of modules/environment_sizing (e.g. `{ dev = { enabled = true } }`)."
  default     = {}
  nullable    = false
}

variable "alert_runbook_base_url" {
  type        = string
  description = "Optional https URL of your published docs/deploy-aks.md; alerts then carry a runbook_url."
  default     = null
}

variable "managed_grafana_enabled" {
  type        = bool
  description = "Create Azure Managed Grafana wired to the Azure Monitor workspace. Off by default: each environment runs its own Grafana with the repository's dashboards."
  default     = false
  nullable    = false
}

variable "grafana_admin_object_ids" {
  type        = list(string)
  description = "Entra ID users or groups made Grafana Admin of the Managed Grafana (when enabled)."
  default     = []
  nullable    = false
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource, merged over the standard ones."
  default     = {}
  nullable    = false
}
