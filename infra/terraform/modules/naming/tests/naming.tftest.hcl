# Real `terraform test` of the naming module: names inside Azure's limits, stable, unique per seed, and the
# workload-identity subject in the exact form the cluster's service account token carries.

variables {
  environment = "prod"
  location    = "westeurope"
  unique_seed = "00000000-0000-0000-0000-000000000001"
}

run "standard_names_follow_the_scheme" {
  command = plan

  assert {
    condition     = output.names.resource_group == "rg-iots6-prod-weu"
    error_message = "Resource group name is not rg-<workload>-<env>-<region>: ${output.names.resource_group}"
  }
  assert {
    condition     = can(regex("^kv-iots6-prod-weu-[0-9a-f]{6}$", output.names.key_vault))
    error_message = "Key Vault name does not follow kv-<base>-<hash6>: ${output.names.key_vault}"
  }
  assert {
    condition     = can(regex("^acriots6prodweu[0-9a-f]{6}$", output.names.container_registry))
    error_message = "Container registry name is not alphanumeric acr<base><hash6>: ${output.names.container_registry}"
  }
  assert {
    condition     = output.kubernetes_namespace == "iots6-prod" && output.kubernetes_service_account == "iots6-secrets"
    error_message = "Namespace/service account differ from DECISIONS §7 (iots6-<env>, iots6-secrets)."
  }
  assert {
    condition     = output.federated_subject == "system:serviceaccount:iots6-prod:iots6-secrets"
    error_message = "Federated subject is not system:serviceaccount:iots6-prod:iots6-secrets: ${output.federated_subject}"
  }
  assert {
    condition     = output.grafana_service_account == "iots6-grafana" && output.grafana_federated_subject == "system:serviceaccount:iots6-prod:iots6-grafana"
    error_message = "Grafana's subject is not system:serviceaccount:iots6-prod:iots6-grafana (the chart's Grafana service account): ${output.grafana_federated_subject}"
  }
  assert {
    condition     = output.names.grafana_federated_credential != output.names.federated_identity_credential
    error_message = "The two federated credentials of one identity need different names."
  }
  assert {
    condition     = output.tags["environment"] == "prod" && output.tags["managed-by"] == "terraform" && output.tags["workload"] == "iots6"
    error_message = "Standard tags missing."
  }
  assert {
    condition     = output.names.postgres_private_dns_zone == "${output.names.postgres_server}.private.postgres.database.azure.com"
    error_message = "The PostgreSQL private DNS zone must end in .postgres.database.azure.com for VNet integration."
  }
}

run "display_region_names_are_normalised" {
  command = plan
  variables {
    location = "West Europe"
  }
  assert {
    condition     = output.location == "westeurope" && output.location_short == "weu"
    error_message = "\"West Europe\" was not normalised to westeurope/weu."
  }
}

run "longest_inputs_stay_inside_azure_limits" {
  command = plan
  variables {
    workload    = "abcdefgh"
    environment = "abcdefghij"
    location    = "southafricanorthwest"
  }

  assert {
    condition     = length(output.names.key_vault) <= 24 && can(regex("^[a-z][a-z0-9-]*[a-z0-9]$", output.names.key_vault)) && !strcontains(output.names.key_vault, "--")
    error_message = "Key Vault name breaks Azure's rule (3-24, letter first, no --): ${output.names.key_vault}"
  }
  assert {
    condition     = length(output.names.container_registry) <= 50 && can(regex("^[a-z0-9]{5,}$", output.names.container_registry))
    error_message = "Container registry name breaks Azure's rule (5-50 alphanumerics): ${output.names.container_registry}"
  }
  assert {
    condition     = length(output.names.postgres_server) <= 63 && can(regex("^[a-z][a-z0-9-]*[a-z0-9]$", output.names.postgres_server))
    error_message = "PostgreSQL server name breaks Azure's rule: ${output.names.postgres_server}"
  }
  assert {
    condition     = length(output.names.dns_label) <= 63 && can(regex("^[a-z][a-z0-9-]{1,61}[a-z0-9]$", output.names.dns_label))
    error_message = "DNS label breaks Azure's rule: ${output.names.dns_label}"
  }
  assert {
    condition     = length(output.names.grafana) <= 23 && can(regex("^[a-zA-Z][a-zA-Z0-9-]*[a-zA-Z0-9]$", output.names.grafana))
    error_message = "Managed Grafana name breaks Azure's rule (2-23): ${output.names.grafana}"
  }
  assert {
    condition     = length(output.names.computer_name) <= 15 && !endswith(output.names.computer_name, "-")
    error_message = "Computer name is longer than 15 or ends with a hyphen: ${output.names.computer_name}"
  }
  assert {
    condition     = length(output.names.kubernetes_dns_prefix) <= 54 && length(output.names.action_group_short_name) <= 12
    error_message = "AKS DNS prefix (<=54) or action group short name (<=12) too long."
  }
  assert {
    condition     = output.location_short == "southa"
    error_message = "An unknown region should fall back to its first 6 characters, got ${output.location_short}."
  }
}

run "seed_a" {
  command = plan
}

run "same_seed_same_names" {
  command = plan
  assert {
    condition     = output.names.key_vault == run.seed_a.names.key_vault && output.suffix == run.seed_a.suffix
    error_message = "Names are not stable for the same inputs."
  }
}

run "another_subscription_gets_other_global_names" {
  command = plan
  variables {
    unique_seed = "00000000-0000-0000-0000-000000000002"
  }
  assert {
    condition     = output.names.key_vault != run.seed_a.names.key_vault && output.names.container_registry != run.seed_a.names.container_registry
    error_message = "Two subscriptions would collide on globally unique names."
  }
  assert {
    condition     = output.names.resource_group == run.seed_a.names.resource_group
    error_message = "Resource-group-scoped names should not depend on the seed."
  }
}

run "extra_tags_merge_over_standard_ones" {
  command = plan
  variables {
    tags = { owner = "ops", environment = "production" }
  }
  assert {
    condition     = output.tags["owner"] == "ops" && output.tags["environment"] == "production" && output.tags["managed-by"] == "terraform"
    error_message = "Extra tags do not merge over the standard ones."
  }
}

run "rejects_upper_case_environment" {
  command = plan
  variables {
    environment = "Prod"
  }
  expect_failures = [var.environment]
}

run "rejects_workload_with_symbols" {
  command = plan
  variables {
    workload = "iot_s6"
  }
  expect_failures = [var.workload]
}

run "rejects_short_seed" {
  command = plan
  variables {
    unique_seed = "x"
  }
  expect_failures = [var.unique_seed]
}

run "rejects_forbidden_tag_name" {
  command = plan
  variables {
    tags = { "a/b" = "x" }
  }
  expect_failures = [var.tags]
}
