# Real `terraform test` of the alert rules: one group per environment, every rule scoped to its namespace,
# thresholds taken from the environment's sizing, disabled environments produce disabled groups.
# (tests/infra/terraform/test_alert_rules.py also checks the metric names against the ingest's registry.)

variables {
  rule_group_prefix = "prg-iots6-platform-weu"
  environments = {
    dev = {
      namespace = "iots6-dev"
      alerts    = { enabled = false, ingest_down_minutes = 15, config_server_down_minutes = 15, no_rows_minutes = 120, commit_lag_p99_seconds = 30, dead_letters_per_15m = 100, traffic_drop_ratio = 0.2 }
    }
    prod = {
      namespace = "iots6-prod"
      alerts    = { enabled = true, ingest_down_minutes = 5, config_server_down_minutes = 5, no_rows_minutes = 15, commit_lag_p99_seconds = 10, dead_letters_per_15m = 20, traffic_drop_ratio = 0.5 }
    }
  }
}

run "one_group_per_environment" {
  command = plan
  assert {
    condition     = keys(output.rule_groups) == ["prg-iots6-platform-weu-dev", "prg-iots6-platform-weu-prod"]
    error_message = "Unexpected groups: ${jsonencode(keys(output.rule_groups))}"
  }
  assert {
    condition     = output.rule_groups["prg-iots6-platform-weu-dev"].enabled == false && output.rule_groups["prg-iots6-platform-weu-prod"].enabled
    error_message = "The dev group should be disabled and the prod group enabled."
  }
  assert {
    condition     = jsonencode(output.alert_names) == jsonencode(["Iots6IngestDown", "Iots6IngestNoRowsStored", "Iots6IngestCommitLagHigh", "Iots6IngestDatabaseErrors", "Iots6DeadLettersRising", "Iots6DevicesOffline", "Iots6IngestNotConnected", "Iots6ConfigServerDown"])
    error_message = "Unexpected alerts: ${jsonencode(output.alert_names)}"
  }
}

run "every_rule_is_scoped_to_its_namespace" {
  command = plan
  assert {
    condition = alltrue(flatten([
      for name, g in output.rule_groups : [
        for r in g.rules : strcontains(r.expression, "namespace=\"${g.namespace}\"") && !strcontains(r.expression, "namespace=\"iots6-${g.environment == "dev" ? "prod" : "dev"}\"")
      ]
    ]))
    error_message = "A rule selects series outside its environment's namespace."
  }
  assert {
    condition     = alltrue(flatten([for name, g in output.rule_groups : [for r in g.rules : r.labels.environment == g.environment && startswith(r.annotations.runbook, "docs/deploy-aks.md#") && !contains(keys(r.annotations), "runbook_url")]]))
    error_message = "Rules lack their environment label or runbook reference (or carry a runbook_url nobody configured)."
  }
}

run "thresholds_come_from_the_environment" {
  command = plan
  assert {
    condition     = output.rule_groups["prg-iots6-platform-weu-prod"].rules[0].for == "PT5M" && output.rule_groups["prg-iots6-platform-weu-dev"].rules[0].for == "PT15M"
    error_message = "ingest_down_minutes is not used as the IngestDown duration."
  }
  assert {
    condition     = strcontains(output.rule_groups["prg-iots6-platform-weu-prod"].rules[1].expression, "[15m]")
    error_message = "no_rows_minutes is not the NoRowsStored window."
  }
  assert {
    condition     = endswith(output.rule_groups["prg-iots6-platform-weu-prod"].rules[2].expression, "> 10")
    error_message = "commit_lag_p99_seconds is not the lag threshold."
  }
  assert {
    condition     = strcontains(output.rule_groups["prg-iots6-platform-weu-prod"].rules[5].expression, "< 0.5 * sum by (namespace)") && strcontains(output.rule_groups["prg-iots6-platform-weu-prod"].rules[5].expression, "offset 1d")
    error_message = "DevicesOffline should compare with the same window a day earlier."
  }
}

run "broker_connection_and_config_server_rules" {
  command = plan
  variables {
    environments = {
      prod = {
        namespace = "iots6-prod"
        alerts    = { enabled = true, ingest_down_minutes = 5, config_server_down_minutes = 7, no_rows_minutes = 15, commit_lag_p99_seconds = 10, dead_letters_per_15m = 20, traffic_drop_ratio = 0.5 }
      }
    }
  }
  assert {
    condition     = [for r in output.rule_groups["prg-iots6-platform-weu-prod"].rules : r.for if r.alert == "Iots6ConfigServerDown"][0] == "PT7M"
    error_message = "config_server_down_minutes is not the ConfigServerDown duration."
  }
  assert {
    condition     = [for r in output.rule_groups["prg-iots6-platform-weu-prod"].rules : r.expression if r.alert == "Iots6ConfigServerDown"][0] == "absent(iots6_config_fetches_total{namespace=\"iots6-prod\"})"
    error_message = "ConfigServerDown should fire when no config server of the namespace is scraped."
  }
  assert {
    condition     = startswith([for r in output.rule_groups["prg-iots6-platform-weu-prod"].rules : r.expression if r.alert == "Iots6IngestNotConnected"][0], "min by (namespace) (iots6_ingest_mqtt_connected{namespace=\"iots6-prod\"}) < 1")
    error_message = "IngestNotConnected should fire when any ingest worker reports no broker connection."
  }
  assert {
    condition     = [for r in output.rule_groups["prg-iots6-platform-weu-prod"].rules : r.expression if r.alert == "Iots6IngestDown"][0] == "absent(iots6_ingest_mqtt_connected{namespace=\"iots6-prod\"})"
    error_message = "IngestDown should fire when no ingest of the namespace is scraped."
  }
}

run "runbook_url_when_a_base_is_given" {
  command = plan
  variables {
    runbook_base_url = "https://example.org/iotctl/docs/deploy-aks.md"
  }
  assert {
    condition     = output.rule_groups["prg-iots6-platform-weu-prod"].rules[0].annotations.runbook_url == "https://example.org/iotctl/docs/deploy-aks.md#iots6ingestdown"
    error_message = "runbook_url is not base#anchor."
  }
}

run "bad_namespace_is_refused" {
  command = plan
  variables {
    environments = {
      prod = {
        namespace = "IOTS6_Prod"
        alerts    = { enabled = true, ingest_down_minutes = 5, config_server_down_minutes = 5, no_rows_minutes = 15, commit_lag_p99_seconds = 10, dead_letters_per_15m = 20, traffic_drop_ratio = 0.5 }
      }
    }
  }
  expect_failures = [var.environments]
}

run "ratio_outside_zero_one_is_refused" {
  command = plan
  variables {
    environments = {
      prod = {
        namespace = "iots6-prod"
        alerts    = { enabled = true, ingest_down_minutes = 5, config_server_down_minutes = 5, no_rows_minutes = 15, commit_lag_p99_seconds = 10, dead_letters_per_15m = 20, traffic_drop_ratio = 1.5 }
      }
    }
  }
  expect_failures = [var.environments]
}
