"""The Prometheus alert rules ask for series the ingest and the config server really export.

modules/prometheus_alerts is evaluated by real Terraform (as the platform root calls it: thresholds from
modules/environment_sizing for dev, staging and prod), and every metric name in every rule expression must be a
sample name of the ingest's own registry (services/iots6_platform/ingest/metrics.py) or the config server's
(services/iots6_platform/config_server/metrics.py). The sample names are derived from the registries' metric
families the way
prometheus_client exposes them: a counter ``x`` as ``x_total`` (and ``x_created``), a histogram ``h`` as
``h_bucket``/``h_count``/``h_sum``, a gauge as its name. Grouping labels other than ``namespace`` (added by the
scrape) and ``le`` must be labels of the metric they aggregate.

A rule on ``absent(x)`` means "not scraped" only if ``x`` is exposed from the process's start, before anything
happened; the series those rules use are read from a fresh registry's exposition (the config server's in
prometheus_client's multiprocess mode, as it runs under gunicorn).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from .conftest import TF_ROOT

ROOT = """
module "sizing" {{
  source      = "{modules}/environment_sizing"
  for_each    = toset(["dev", "staging", "prod"])
  environment = each.key
}}

module "alerts" {{
  source            = "{modules}/prometheus_alerts"
  rule_group_prefix = "prg-iots6-platform-weu"
  environments = {{
    for env in ["dev", "staging", "prod"] : env => {{
      namespace = "iots6-${{env}}"
      alerts    = module.sizing[env].alerts
    }}
  }}
}}

output "rule_groups" {{
  value = module.alerts.rule_groups
}}
"""

# PromQL words that are not metric names: functions/aggregations are recognised by the "(" after them.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless"}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names selected by an expression of the subset of PromQL our rules use (documented steps)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # 1. string literals (label values) are not names
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # 2. label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # 3. range selectors
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)  # 4. grouping label lists
    expr = re.sub(r"\boffset\s+\d+[smhdwy]", " ", expr)  # 5. offset durations
    names = set()
    for match in _IDENT.finditer(expr):
        word = match.group(0)
        following = expr[match.end() :].lstrip()
        if word in _KEYWORDS or following.startswith("("):
            continue
        names.add(word)
    return names


def grouping_labels(expr: str) -> set[str]:
    return {
        label.strip()
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
        for label in group.split(",")
        if label.strip()
    }


SUFFIXES = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_count", "_sum", "_created"]}


def _series(collectors, registry) -> dict[str, set[str]]:
    """Sample name -> label names of ``collectors``, which must be all of ``registry``."""
    registered = {f.name for f in registry.collect()}
    assert {f.name for c in collectors for f in c.describe()} == registered  # the collectors are the registry
    series: dict[str, set[str]] = {}
    for collector in collectors:
        labels = set(collector._labelnames)  # prometheus_client keeps a metric's label names here
        for family in collector.describe():
            for suffix in SUFFIXES.get(family.type, [""]):
                series[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return series


def ingest_series() -> dict[str, set[str]]:
    """Sample name -> label names, from the ingest's registry."""
    from prometheus_client.metrics import MetricWrapperBase

    from iots6_platform.ingest import metrics

    return _series([c for c in vars(metrics).values() if isinstance(c, MetricWrapperBase)], metrics.REGISTRY)


def config_server_series() -> dict[str, set[str]]:
    """Sample name -> label names, from the config server's registry (one per app)."""
    from prometheus_client.metrics import MetricWrapperBase

    from iots6_platform.config_server.metrics import Metrics

    metrics = Metrics()
    return _series([c for c in vars(metrics).values() if isinstance(c, MetricWrapperBase)], metrics.registry)


# What a fresh config server worker exposes on /metrics under gunicorn (PROMETHEUS_MULTIPROC_DIR set before
# prometheus_client loads, as services/iots6_platform/config_server/__main__.py does), before any request.
_FRESH_CONFIG_SERVER = """
from iots6_platform.config_server.metrics import Metrics
body, _ = Metrics().exposition()
print(body.decode())
"""


def fresh_samples(exposition: str) -> set[str]:
    """The sample names of an exposition (text format)."""
    return {line.split()[0].split("{")[0] for line in exposition.splitlines() if line and not line.startswith("#")}


def absent_metrics(expr: str) -> set[str]:
    return {m for group in re.findall(r"\babsent\(([^)]*)\)", expr) for m in metric_names(group)}


@pytest.fixture(scope="module")
def rule_groups(terraform_bin, tmp_path_factory):
    import os
    import subprocess

    work = tmp_path_factory.mktemp("alerts")
    (work / "main.tf").write_text(ROOT.format(modules=TF_ROOT / "modules"))
    env = dict(os.environ, TF_DATA_DIR=str(work / ".tf-data"), NO_COLOR="1")
    for args in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        done = subprocess.run([str(terraform_bin), *args], cwd=work, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    out = subprocess.run([str(terraform_bin), "output", "-json"], cwd=work, env=env, capture_output=True, text=True)
    return json.loads(out.stdout)["rule_groups"]["value"]


def test_extractor_on_known_expressions():
    assert metric_names('sum by (namespace) (rate(a_total{namespace="x"}[5m] offset 1d)) < 0.5 * b') == {"a_total", "b"}
    assert metric_names('histogram_quantile(0.99, sum by (le) (rate(h_bucket{x="y"}[5m]))) > 10') == {"h_bucket"}
    assert metric_names('(max(g{n="a"}) < 1) or absent(g{n="a"})') == {"g"}


def test_every_metric_exists_in_the_ingest_or_the_config_server(rule_groups):
    ingest, config = ingest_series(), config_server_series()
    assert not set(ingest) & set(config)  # one name, one service
    series = {**ingest, **config}
    assert "iots6_ingest_readings_stored_total" in series and "iots6_config_fetches_total" in series
    used = set()
    for name, group in rule_groups.items():
        for rule in group["rules"]:
            names = metric_names(rule["expression"])
            assert names, f"{rule['alert']}: no metric found in {rule['expression']}"
            unknown = names - set(series)
            assert not unknown, f"{name}/{rule['alert']} uses metrics no service exports: {unknown}"
            for metric in names:
                extra = grouping_labels(rule["expression"]) - {"namespace", "le"} - series[metric]
                assert not extra, f"{rule['alert']} groups {metric} by labels it does not have: {extra}"
            used |= names
    # The families the issue asks for are all covered, and the config server is watched too.
    assert {
        "iots6_ingest_mqtt_connected",
        "iots6_ingest_readings_stored_total",
        "iots6_ingest_commit_lag_seconds_bucket",
        "iots6_ingest_dead_letters_total",
        "iots6_ingest_messages_received_total",
        "iots6_config_fetches_total",
    } <= used


def test_absent_rules_watch_series_a_fresh_process_already_exposes(rule_groups, tmp_path):
    from prometheus_client import generate_latest

    from iots6_platform.ingest import metrics

    ingest = fresh_samples(generate_latest(metrics.REGISTRY).decode())
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_CONFIG_SERVER], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    config = fresh_samples(done.stdout)
    watched = {m for g in rule_groups.values() for r in g["rules"] for m in absent_metrics(r["expression"])}
    assert watched == {"iots6_ingest_mqtt_connected", "iots6_config_fetches_total"}
    assert watched <= ingest | config, (
        f"absent() on series a fresh process does not expose: {watched - ingest - config}"
    )


def test_every_runbook_anchor_is_a_heading_of_the_doc(rule_groups):
    doc = (TF_ROOT.parents[1] / "docs" / "deploy-aks.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", doc, re.M)}
    for group in rule_groups.values():
        for rule in group["rules"]:
            page, _, anchor = rule["annotations"]["runbook"].partition("#")
            assert page == "docs/deploy-aks.md" and anchor in anchors, f"{rule['alert']}: no heading for #{anchor}"


def test_groups_per_environment_with_their_thresholds(rule_groups):
    by_env = {g["environment"]: g for g in rule_groups.values()}
    assert set(by_env) == {"dev", "staging", "prod"}
    assert by_env["dev"]["enabled"] is False and by_env["prod"]["enabled"] is True
    for env, group in by_env.items():
        assert group["namespace"] == f"iots6-{env}"
        for rule in group["rules"]:
            assert f'namespace="iots6-{env}"' in rule["expression"]
            assert re.fullmatch(r"PT\d+M", rule["for"]), rule["for"]
            assert 0 <= rule["severity"] <= 4
    prod = {r["alert"]: r for r in by_env["prod"]["rules"]}
    assert prod["Iots6IngestDown"]["for"] == "PT5M"
    assert "[15m]" in prod["Iots6IngestNoRowsStored"]["expression"]
    assert prod["Iots6IngestNotConnected"]["for"] == prod["Iots6ConfigServerDown"]["for"] == "PT5M"
    assert {g["environment"]: len(g["rules"]) for g in by_env.values()} == {"dev": 8, "staging": 8, "prod": 8}
