"""The benchmark harness still runs end to end and reports every figure (tiny sizes: it is a smoke run, not a
measurement; the figures themselves are checked only for being positive and consistent)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_smoke_reports_every_figure(tmp_path):
    doc = tmp_path / "benchmarks.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--n",
            "500",
            "--devices",
            "20",
            "--row-limit",
            "100",
            "--row-seconds",
            "3",
            "--latency-seconds",
            "2",
            "--latency-rate",
            "200",
            "--latency-devices",
            "50",
            "--query-days",
            "0.05",
            "--query-devices",
            "5",
            "--latest-devices",
            "30",
            "--latest-days",
            "0.05,0.1",
            "--latest-interval",
            "60",
            "--latency-high-rate",
            "300",
            "--latency-high-devices",
            "60",
            "--fleet-devices",
            "40",
            "--fleet-hz",
            "1",
            "--fleet-seconds",
            "2",
            "--startup-runs",
            "1",
            "--provision-devices",
            "20",
            "--provision-seconds",
            "30",
            "--durability-n",
            "300",
            "--no-profile",
            "--doc",
            str(doc),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)

    drain = result["drain"]
    for consumer in ("mosquitto_sub", "paho_311_loop_forever", "a_receive_only", "b_row_at_a_time", "c_ingest"):
        assert drain[consumer]["msgs_per_s"] > 0, consumer
    assert drain["c_ingest"]["rows_stored"] == 500
    assert drain["ratio_c_a"] > 0 and drain["ratio_c_b"] > 0
    scale = result["scale_out"]
    assert scale["one_worker"]["rows_stored"] == scale["two_workers"]["rows_stored"] == 500
    assert scale["ratio_2_1"] > 0
    latency = result["latency"]
    assert latency["rows"] == 400
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    queries = result["queries"]
    assert queries["dataset"]["rows"] == 5 * 432
    assert set(queries["queries"]) == {
        "latest_per_device",
        "last_hour_raw_one_device",
        "hourly_all_devices_30d",
    }
    assert all(q["median_ms"] > 0 and q["rows"] > 0 for q in queries["queries"].values())
    latest = result["latest"]
    assert set(latest["retention"]) == {"0.05d", "0.1d"}
    for span in latest["retention"].values():
        assert span["queries"]["latest_reading"]["rows"] == span["queries"]["scan_sensor_data"]["rows"] == 30
        assert span["queries"]["latest_reading"]["median_ms"] > 0
    assert latest["retention"]["0.05d"]["refresh_latest_changed"] == 30  # the older readings change nothing
    assert latest["retention"]["0.1d"]["refresh_latest_changed"] == 0
    high = result["latency_high"]  # 300 msg/s from 60 devices, each on its own connection, for 2 s
    assert high["published"] == high["rows"] == 600 and high["lost"] == 0 and high["p99_ms"] > 0
    connected = result["fleet"]
    assert connected["published"] == connected["acked"] == connected["rows"] == 80
    assert connected["lost"] == connected["duplicates"] == 0
    assert set(connected["processes"]) == {"broker", "ingest", "load_generator"}
    assert result["startup"]["help"]["ratio"] > 0 and result["startup"]["tail"]["first_line_ms_median"] > 0
    provisioned = result["provisioning"]
    assert provisioned["devices"] == 20 and provisioned["bounded_by"] == "count"
    durability = result["durability"]
    assert set(durability["settings"]) == {"every_60_s", "every_1_s", "every_1000_changes", "every_100_changes",
                                           "every_change"}  # fmt: skip
    for name, setting in durability["settings"].items():
        assert setting["online"]["published"] == setting["offline"]["published"] == 300, name
        assert setting["online"]["msgs_per_s"] > 0 and setting["offline"]["msgs_per_s"] > 0, name
        assert 0 <= setting["offline"]["survived_sigkill"] <= 300, name
    # The setting in use (100 changes) keeps all but the changes since its last save.
    assert durability["settings"]["every_100_changes"]["offline"]["survived_sigkill"] >= 200
    assert set(result["goals"]) == {
        "ratio_c_a",
        "ratio_c_b",
        "latency_p99_ms",
        "hourly_30d_ms",
        "ratio_c_mosquitto_sub",
        "latest_values_ms",
        "provision_fleet_s",
        "latency_high_p99_ms",
        "fleet_p99_ms",
        "fleet_lost",
        "help_vs_plain_typer",
        "tail_first_line_ms",
    }
    for key in ("cpu", "cores", "ram_gib", "os", "python", "postgresql", "mosquitto"):
        assert result["machine"][key], key
    assert len(result["load_average_start"]) == len(result["load_average_end"]) == 3

    text = doc.read_text()
    assert "## Drain" in text and "## Latency" in text and "## Queries" in text and "## Broker durability" in text
    assert "## Latest values" in text and "## A fleet connected at once" in text and "## Start-up" in text
    assert json.dumps(result, indent=2) in text


def test_bench_rejects_a_backlog_smaller_than_the_fleet():
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--n", "5", "--devices", "10", "--no-doc"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--n must be at least --devices" in proc.stderr
