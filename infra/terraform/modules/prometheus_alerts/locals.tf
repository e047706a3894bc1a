locals {
  # Metric names are the ones services/iots6_platform/ingest/metrics.py and services/iots6_platform/config_server/metrics.py export
  # (prometheus_client appends `_total` to counters and `_bucket` to histogram buckets);
  # tests/infra/terraform/test_alert_rules.py checks every name used here against the services' real registries.
  # The `namespace` label comes from the scrape (the chart's PodMonitors label every series with its pod's
  # namespace). `absent()` rules use series that exist from a process's start (a gauge or unlabelled counter at
  # 0), so "absent" means "not scraped": the pods are gone or their /metrics does not answer.
  rules = {
    for env, e in var.environments : env => [
      {
        alert      = "Iots6IngestDown"
        expression = "absent(iots6_ingest_mqtt_connected{namespace=\"${e.namespace}\"})"
        "for"      = "PT${e.alerts.ingest_down_minutes}M"
        severity   = 1
        summary    = "The ingest in ${e.namespace} is down"
        detail     = "No ingest in ${e.namespace} has been scraped for ${e.alerts.ingest_down_minutes} minutes (no pod, or its /metrics does not answer): readings queue in the broker and are not stored."
        anchor     = "iots6ingestdown"
      },
      {
        alert      = "Iots6IngestNoRowsStored"
        expression = "sum by (namespace) (increase(iots6_ingest_readings_stored_total{namespace=\"${e.namespace}\"}[${e.alerts.no_rows_minutes}m])) == 0"
        "for"      = "PT5M"
        severity   = 2
        summary    = "No readings stored in ${e.namespace} for ${e.alerts.no_rows_minutes} minutes"
        detail     = "The ingest in ${e.namespace} is running but committed no row to sensor_data in ${e.alerts.no_rows_minutes} minutes: devices silent, broker ACLs, or the database."
        anchor     = "iots6ingestnorowsstored"
      },
      {
        alert      = "Iots6IngestCommitLagHigh"
        expression = "histogram_quantile(0.99, sum by (namespace, le) (rate(iots6_ingest_commit_lag_seconds_bucket{namespace=\"${e.namespace}\"}[5m]))) > ${e.alerts.commit_lag_p99_seconds}"
        "for"      = "PT10M"
        severity   = 2
        summary    = "Ingest consumer lag in ${e.namespace} above ${e.alerts.commit_lag_p99_seconds} s"
        detail     = "The 99th percentile from receiving a reading to committing it is {{ $value }} s in ${e.namespace}: the ingest falls behind (database slow, or too few replicas)."
        anchor     = "iots6ingestcommitlaghigh"
      },
      {
        alert      = "Iots6IngestDatabaseErrors"
        expression = "sum by (namespace) (increase(iots6_ingest_db_errors_total{namespace=\"${e.namespace}\"}[10m])) > 0"
        "for"      = "PT10M"
        severity   = 2
        summary    = "Batch writes failing in ${e.namespace}"
        detail     = "The ingest in ${e.namespace} has retried failed batch writes for 10 minutes; nothing is lost (messages stay unacknowledged) but nothing is stored either."
        anchor     = "iots6ingestdatabaseerrors"
      },
      {
        alert      = "Iots6DeadLettersRising"
        expression = "sum by (namespace, reason) (increase(iots6_ingest_dead_letters_total{namespace=\"${e.namespace}\"}[15m])) > ${e.alerts.dead_letters_per_15m}"
        "for"      = "PT5M"
        severity   = 3
        summary    = "Dead letters rising in ${e.namespace} ({{ $labels.reason }})"
        detail     = "More than ${e.alerts.dead_letters_per_15m} messages in 15 minutes were dead-lettered in ${e.namespace} with reason {{ $labels.reason }}: a firmware or contract mismatch, or unprovisioned devices."
        anchor     = "iots6deadlettersrising"
      },
      {
        alert      = "Iots6DevicesOffline"
        expression = "sum by (namespace) (rate(iots6_ingest_messages_received_total{namespace=\"${e.namespace}\"}[30m])) < ${e.alerts.traffic_drop_ratio} * sum by (namespace) (rate(iots6_ingest_messages_received_total{namespace=\"${e.namespace}\"}[30m] offset 1d))"
        "for"      = "PT30M"
        severity   = 2
        summary    = "Device traffic in ${e.namespace} fell below ${e.alerts.traffic_drop_ratio * 100}% of yesterday's"
        detail     = "Messages received in ${e.namespace} dropped below ${e.alerts.traffic_drop_ratio * 100}% of the same time yesterday: devices went offline (power, Wi-Fi, certificates). The ingest exports no per-device metric, so this fleet-wide traffic drop stands in for \"devices offline\"; `iotctl devices` lists last_seen per device."
        anchor     = "iots6devicesoffline"
      },
      {
        alert      = "Iots6IngestNotConnected"
        expression = "min by (namespace) (iots6_ingest_mqtt_connected{namespace=\"${e.namespace}\"}) < 1"
        "for"      = "PT${e.alerts.ingest_down_minutes}M"
        severity   = 1
        summary    = "An ingest worker in ${e.namespace} is not connected to the broker"
        detail     = "At least one ingest worker in ${e.namespace} runs but has had no MQTT connection for ${e.alerts.ingest_down_minutes} minutes: its readings (all of them with one worker, its share of a shared subscription otherwise) queue in the broker and are not stored. The broker is down or unreachable, or svc.ingest's credentials or ACL are refused."
        anchor     = "iots6ingestnotconnected"
      },
      {
        alert      = "Iots6ConfigServerDown"
        expression = "absent(iots6_config_fetches_total{namespace=\"${e.namespace}\"})"
        "for"      = "PT${e.alerts.config_server_down_minutes}M"
        severity   = 2
        summary    = "The config server in ${e.namespace} is down"
        detail     = "No config server in ${e.namespace} has been scraped for ${e.alerts.config_server_down_minutes} minutes (no pod, or its /metrics does not answer): devices keep their cached configuration but get no changes, and `iotctl config` fails."
        anchor     = "iots6configserverdown"
      },
    ]
  }

  rule_groups = {
    for env, e in var.environments : "${var.rule_group_prefix}-${env}" => {
      environment = env
      namespace   = e.namespace
      description = "iots6 ${env}: ingest health and broker connection, consumer lag, dead letters, device traffic, config server (namespace ${e.namespace})"
      enabled     = e.alerts.enabled
      interval    = "PT1M"
      rules = [
        for r in local.rules[env] : {
          alert      = r.alert
          expression = r.expression
          "for"      = r.for
          severity   = r.severity
          labels = {
            workload    = "iots6"
            environment = env
            namespace   = e.namespace
          }
          annotations = merge(
            {
              summary     = r.summary
              description = r.detail
              runbook     = "docs/deploy-aks.md#${r.anchor}"
            },
            var.runbook_base_url == null ? {} : { runbook_url = "${var.runbook_base_url}#${r.anchor}" },
          )
        }
      ]
    }
  }
}
