"""The PromQL panels of the ingest health dashboard ask for series a real ingest process really exposes.

There is no Prometheus or Grafana binary here, so the check is made where a wrong name would bite: every metric
name in every PromQL expression of infra/grafana/dashboards/ingest.json (found by :func:`metric_names`, a small
documented extractor below) must be a sample name in the ``/metrics`` exposition of the real ingest service
(``python -m iots6_platform.ingest`` from the ``ingest_factory`` fixture, on the real Mosquitto and PostgreSQL of the
``broker``/``database`` fixtures), scraped after a reading has been stored and a message dead-lettered (a labelled
counter such as ``iots6_ingest_dead_letters_total{reason}`` has no series until its first label value is used).
Histogram quantiles must read ``_bucket`` series that exist with ``le`` labels and keep ``le`` when aggregating;
the only Grafana variables PromQL may use are ``$__rate_interval`` and ``$__interval``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from iots6_platform.core import contract
from iots6_platform.core.contract import Reading

from .conftest import wait_until

DASHBOARD = Path(__file__).resolve().parents[2] / "infra" / "grafana" / "dashboards" / "ingest.json"
PROM_DS = {"type": "prometheus", "uid": "iots6-prometheus"}
GRAFANA_VARIABLES = {"$__rate_interval", "$__interval"}

# ------------------------------------------------------------------------------------------ PromQL extractor
#: PromQL words that look like identifiers but are not metric names (operators and modifiers; functions and
#: aggregations are recognised by the "(" that follows them).
_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "atan2",
}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, for the subset of PromQL our dashboards write.

    1. Drop string literals ("…", '…', `…`): label values and regexes are not names.
    2. Drop label matchers ``{…}`` and range/subquery brackets ``[…]`` (where ``$__rate_interval`` lives).
    3. Drop ``by``/``without``/``on``/``ignoring``/``group_left``/``group_right`` with their label lists ``(…)``,
       so ``sum by (le) (…)`` reads as ``sum (…)``.
    4. Of the identifiers left, a name followed by ``(`` is a function or aggregation, a keyword is an operator
       or modifier, anything starting with a digit was never matched; the rest are metric names.

    A selector by ``{__name__=…}`` would hide its name from step 2, so it is refused outright.
    """
    assert "__name__" not in expr, f"select metrics by name, not by __name__: {expr}"
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', " ", expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    names = set()
    for m in _IDENT.finditer(text):
        if m.start() > 0 and (text[m.start() - 1].isdigit() or text[m.start() - 1] == "."):
            continue  # the exponent of a number such as 1e3
        if text[m.end() :].lstrip().startswith("("):
            continue  # function or aggregation
        if m.group(0).lower() in _KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def test_extractor_on_known_forms():
    assert metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket{job="ingest", reason=~"a|b"}[$__rate_interval])))'
    ) == {"x_seconds_bucket"}
    assert metric_names("sum(rate(a_total[5m])) / sum(rate(b_count[5m] offset 1h))") == {"a_total", "b_count"}
    assert metric_names("a unless on(instance) group_left(job) b > bool 1e3") == {"a", "b"}
    assert metric_names("sum without (reason) (increase(ns:c_total[$__interval]))") == {"ns:c_total"}
    assert metric_names('up{job="ingest"} == 1') == {"up"}
    with pytest.raises(AssertionError, match="__name__"):
        metric_names('{__name__="x"}')


# ------------------------------------------------------------------------------------------ the dashboard
def _promql() -> list[tuple[str, str]]:
    """(where, expr) for every target on the Prometheus datasource."""
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for t in panel.get("targets", []):
            if t["datasource"] == PROM_DS:
                found.append((f"panel {panel['id']} {panel['title']!r} {t['refId']}", t["expr"]))
    return found


def test_promql_uses_only_the_rate_and_interval_variables():
    queries = _promql()
    assert len(queries) >= 10
    for where, expr in queries:
        used = set(re.findall(r"\$\{?\w+\}?", expr))
        assert used <= GRAFANA_VARIABLES, f"{where}: Grafana variables {used - GRAFANA_VARIABLES} in {expr}"
        # Every range of a rate()/increase() follows Grafana's scrape-aware interval, never a hard-coded one.
        for fn, window in re.findall(r"\b(rate|increase|irate)\(\s*[^()\[]*\[([^\]]*)\]", expr):
            assert window == "$__rate_interval", f"{where}: {fn}(…[{window}]) should use [$__rate_interval]"


# ------------------------------------------------------------------------------------------ a real ingest
def _exposition(text: str) -> dict[str, list[dict[str, str]]]:
    """Sample name -> the label sets it has, parsed with prometheus_client's own exposition-format parser."""
    series: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, []).append(dict(sample.labels))
    return series


def test_every_promql_metric_exists_in_a_real_ingest_exposition(ingest_factory, provision, device_id):
    ingest = ingest_factory().start()
    device = provision(device_id)
    topic = contract.topic(contract.DEFAULT_TOPIC_BASE, device_id, contract.TELEMETRY)
    reading = Reading(datetime.now(UTC), device_id, "telemetry", 1, 21.5, 40.0, 1013.2, False, True, -60, 12, "1.0.0")
    device.wait_acked(
        [device.publish(topic, contract.make_payload(reading)), device.publish(topic, b"\xff\xfe not json")]
    )
    wait_until(
        lambda: (
            ingest.metric("iots6_ingest_readings_stored_total") >= 1
            and ingest.metric("iots6_ingest_dead_letters_total") >= 1
        ),
        15,
        0.1,
        "a stored reading and a dead letter in /metrics",
    )
    series = _exposition(ingest.metrics())
    assert {"reason": "not_json"} in series["iots6_ingest_dead_letters_total"], series.get(
        "iots6_ingest_dead_letters_total"
    )

    referenced: set[str] = set()
    for where, expr in _promql():
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr}"
        missing = names - set(series)
        assert not missing, f"{where}: {sorted(missing)} not exposed by the ingest's /metrics"
        referenced |= names
        for inner in re.findall(r"histogram_quantile\(\s*[\d.]+\s*,(.*)\)", expr):
            buckets = metric_names(inner)
            assert buckets and all(n.endswith("_bucket") for n in buckets), f"{where}: quantile of {buckets}"
            assert re.search(r"\bby\s*\([^)]*\ble\b", inner), f"{where}: aggregate keeping `le`"
            for name in buckets:
                les = {labels.get("le") for labels in series[name]}
                assert "+Inf" in les and len(les) > 2, f"{where}: {name} has buckets {les}"
    # The dashboard covers the ingest's health signals (all of them, as the issue asks).
    for name in (
        "iots6_ingest_messages_received_total",
        "iots6_ingest_readings_stored_total",
        "iots6_ingest_duplicates_total",
        "iots6_ingest_dead_letters_total",
        "iots6_ingest_db_errors_total",
        "iots6_ingest_commit_lag_seconds_bucket",
        "iots6_ingest_batch_size_bucket",
        "iots6_ingest_mqtt_connected",
    ):
        assert name in referenced, f"no panel shows {name}"
