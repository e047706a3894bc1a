"""``python -m bench``: run every benchmark in one go, print ONE JSON document, rewrite docs/benchmarks.md.

Examples::

    make bench                                     # the recorded run: 100k backlog, 30 s latency, 30 days
    python -m bench --n 500 --latency-seconds 2 --query-days 1 --no-doc   # a smoke run (tests/bench)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import drain, durability, fleet, latency, latest, machine, provisioning, queries, report, startup
from bench.harness import Stack, log
from bench.profile import PySpy, py_spy

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"

#: Goals from the "Benchmarks" issue, checked in the JSON.
GOALS = {
    "ratio_c_a": 0.75,
    "ratio_c_b": 10,
    "ratio_c_mosquitto_sub": 0.5,  # #16 goal 1: half of what the broker delivers to its own C client
    "latency_p99_ms": 100,
    "latency_high_p99_ms": 150,
    "hourly_30d_ms": 300,
    "latest_values_ms": 5,
    "provision_fleet_s": 60,
    "fleet_p99_ms": 250,
    "fleet_lost": 0,
    "help_vs_plain_typer": 1.25,
    "tail_first_line_ms": 1000,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="backlog size for the drain and scale-out runs")
    parser.add_argument("--devices", type=int, default=100, help="device identities in the backlog")
    parser.add_argument(
        "--row-limit",
        type=int,
        default=10_000,
        help="the row-at-a-time consumer stops after this many messages ...",
    )
    parser.add_argument("--row-seconds", type=float, default=20.0, help="... or after this many seconds")
    parser.add_argument("--latency-seconds", type=float, default=30.0, help="length of the steady-rate run")
    parser.add_argument("--latency-rate", type=int, default=1000, help="messages per second in the latency run")
    parser.add_argument("--latency-devices", type=int, default=1000, help="device identities in the latency run")
    parser.add_argument(
        "--latency-high-rate", type=int, default=5000, help="messages per second in the second latency run (0: skip)"
    )
    parser.add_argument(
        "--latency-high-devices", type=int, default=5000, help="device identities in the second latency run"
    )
    parser.add_argument(
        "--fleet-devices", type=int, default=10_000, help="devices connected at once, each on its own connection"
    )
    parser.add_argument("--fleet-hz", type=float, default=0.1, help="readings per second per connected device")
    parser.add_argument(
        "--fleet-seconds",
        type=float,
        default=20.0,
        help="how long the connected fleet publishes (the recorded goal is 60 s: `--fleet-seconds 60`; 20 s by "
        "default keeps `make bench` inside its budget)",
    )
    parser.add_argument("--startup-runs", type=int, default=15, help="fresh processes per start-up measurement")
    parser.add_argument("--query-days", type=float, default=30.0, help="days of 10 s readings for the query run")
    parser.add_argument("--query-devices", type=int, default=100, help="devices in the query data set")
    parser.add_argument(
        "--latest-devices", type=int, default=1000, help="devices in the latest-values run (latest_reading vs scan)"
    )
    parser.add_argument(
        "--latest-days",
        default="7,30",
        help="retentions (days, comma-separated) at which the latest values are measured",
    )
    parser.add_argument(
        "--latest-interval", type=int, default=600, help="seconds between readings in the latest-values data set"
    )
    parser.add_argument(
        "--provision-devices", type=int, default=10_000, help="devices `iotctl device provision` makes in one go"
    )
    parser.add_argument(
        "--provision-seconds", type=float, default=60.0, help="... stopping after this many seconds (then estimated)"
    )
    parser.add_argument(
        "--durability-n",
        type=int,
        default=20_000,
        help="readings per scenario of the broker durability run (each persistence setting on its own broker)",
    )
    parser.add_argument(
        "--durability-seconds",
        type=float,
        default=60.0,
        help="a durability scenario stops publishing after this many seconds (saving after every change is slow)",
    )
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sample an extra ingest drain with py-spy (default: on when py-spy is installed)",
    )
    parser.add_argument("--doc", type=Path, default=DOC, help="markdown file to rewrite with the results")
    parser.add_argument("--no-doc", action="store_true", help="print the JSON only")
    args = parser.parse_args(argv)
    if min(args.n, args.devices, args.row_limit, args.latency_rate, args.latency_devices, args.query_devices) < 1:
        parser.error("--n, --devices, --row-limit, --latency-rate, --latency-devices and --query-devices must be >= 1")
    if args.durability_n < 1 or args.durability_seconds <= 0:
        parser.error("--durability-n must be >= 1 and --durability-seconds > 0")
    try:
        args.latest_days = tuple(float(d) for d in args.latest_days.split(","))
    except ValueError:
        parser.error("--latest-days must be days separated by commas, e.g. 7,30")
    if min(args.latest_days) <= 0 or args.latest_devices < 1 or args.latest_interval < 1:
        parser.error("--latest-days, --latest-devices and --latest-interval must be > 0")
    if args.n < args.devices:
        parser.error("--n must be at least --devices")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    result: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine.describe(),
        "load_average_start": machine.load_average(),
    }
    profile = None
    if args.profile:
        if py_spy() is None:
            log("py-spy not installed: skipping the profiled run")
        else:
            profile = PySpy
    fleet_size = max(
        args.devices,
        args.latency_devices,
        args.latency_high_devices if args.latency_high_rate else 0,
        args.query_devices,
        args.latest_devices,
        args.fleet_devices,
    )
    # Every device's connection needs a descriptor here and in the broker (a child: it inherits the limit).
    result["open_files_limit"] = fleet.raise_open_files(2 * args.fleet_devices + 1024)
    with Stack(devices=fleet_size) as stack:
        result.update(drain.run(stack, args.n, args.devices, args.row_limit, args.row_seconds, profile))
        result["latency"] = latency.run(stack, args.latency_rate, args.latency_devices, args.latency_seconds)
        if args.latency_high_rate:
            # Each device on its own connection (bench/fleet.py): one paho publisher cannot pace 5,000 msg/s here.
            hz = args.latency_high_rate / args.latency_high_devices
            result["latency_high"] = fleet.run(stack, args.latency_high_devices, hz, args.latency_seconds)
        result["fleet"] = fleet.run(stack, args.fleet_devices, args.fleet_hz, args.fleet_seconds)
        result["startup"] = startup.run(stack, args.startup_runs)
        result["queries"] = queries.run(stack, args.query_devices, args.query_days)
        result["latest"] = latest.run(stack, args.latest_devices, args.latest_days, args.latest_interval)
        log(f"provisioning: up to {args.provision_devices} devices or {args.provision_seconds:g} s")
        result["provisioning"] = provisioning.run_fleet(stack, args.provision_devices, args.provision_seconds)
    result["durability"] = durability.run(args.durability_n, args.durability_seconds)
    result["load_average_end"] = machine.load_average()
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    result["goals"] = goals(result)
    text = json.dumps(result, indent=2)
    if not args.no_doc:
        args.doc.write_text(report.render(result, text))
        log(f"wrote {args.doc}")
    sys.stdout.write(text + "\n")
    return 0


def goals(result: dict) -> dict:
    measured = {
        "ratio_c_a": result["drain"]["ratio_c_a"],
        "ratio_c_b": result["drain"]["ratio_c_b"],
        "ratio_c_mosquitto_sub": result["drain"]["ratio_c_mosquitto_sub"],
        "latency_p99_ms": result["latency"]["p99_ms"],
        "latency_high_p99_ms": result.get("latency_high", {}).get("p99_ms"),
        "fleet_p99_ms": result["fleet"]["p99_ms"],
        "help_vs_plain_typer": result["startup"]["help"]["ratio"],
        "tail_first_line_ms": result["startup"]["tail"]["first_line_ms_median"],
        "fleet_lost": result["fleet"]["lost"] + result["fleet"]["duplicates"],
        "hourly_30d_ms": result["queries"]["queries"]["hourly_all_devices_30d"]["median_ms"],
        # The slowest retention's median: the goal is "regardless of retention".
        "latest_values_ms": max(
            r["queries"]["latest_reading"]["median_ms"] for r in result["latest"]["retention"].values()
        ),
        # The fleet's provisioning time: measured when it finished within the bound, else the fitted estimate.
        "provision_fleet_s": result["provisioning"].get(
            "estimated_seconds_for_target", result["provisioning"]["wall_seconds"]
        ),
    }
    out = {}
    for name, goal in GOALS.items():
        if measured[name] is None:  # a run skipped on the command line
            continue
        higher_is_better = name.startswith("ratio")
        met = measured[name] >= goal if higher_is_better else measured[name] <= goal
        out[name] = {
            "goal": (">= " if higher_is_better else "<= ") + str(goal),
            "measured": measured[name],
            "met": met,
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
