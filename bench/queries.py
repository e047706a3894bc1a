"""Dashboard-shaped queries over D days of 10 s readings from 100 devices, loaded with COPY straight into the
schema and rolled up with ``iots6_refresh_rollups(from, to)``; median wall time (query + binary fetch) of several
runs, and the server's own execution time."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

from bench.harness import Stack, device_ids, log

INTERVAL_S = 10
RUNS = 7

QUERIES = {
    # Each device's newest values from latest_reading (0007); bench/latest.py compares it with the scan of
    # sensor_data it replaced, at two retentions and 1,000 devices.
    "latest_per_device": (
        "SELECT d.device_id, l.time, l.temperature, l.humidity, l.pressure FROM devices AS d "
        "JOIN latest_reading AS l USING (device_id)",
        (),
    ),
    "last_hour_raw_one_device": (
        "SELECT time, temperature, humidity, pressure FROM sensor_data "
        "WHERE device_id = %s AND time >= now() - interval '1 hour' ORDER BY time",
        ("bench-0000",),
    ),
    "hourly_all_devices_30d": (
        "SELECT bucket, device_id, temperature_avg, temperature_min, temperature_max, humidity_avg, pressure_avg "
        "FROM sensor_data_1h WHERE bucket >= now() - interval '30 days' ORDER BY bucket, device_id",
        (),
    ),
}


def load(stack: Stack, dbname: str, devices: int, days: float) -> dict:
    end = datetime.now(UTC).replace(microsecond=0)
    end -= timedelta(seconds=end.second % INTERVAL_S)
    steps = int(days * 86400 / INTERVAL_S)
    start = end - timedelta(seconds=INTERVAL_S * steps)
    # The timestamps are the same for every device: format them once.
    stamps = [(start + timedelta(seconds=INTERVAL_S * k)).strftime("%Y-%m-%d %H:%M:%S+00") for k in range(steps)]
    ids = device_ids(devices)
    started = time.perf_counter()
    with stack.connect(dbname, autocommit=True) as conn:
        conn.execute("SELECT iots6_ensure_partitions(%s, %s)", (start, end + timedelta(days=1)))
        for n, device_id in enumerate(ids):
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(
                    "COPY sensor_data (time, device_id, kind, seq, temperature, humidity, pressure, motion, switch, "
                    "rssi, uptime_s, fw, received_at) FROM STDIN"
                ) as copy,
            ):
                chunk = []
                for k, stamp in enumerate(stamps):
                    chunk.append(
                        f"{stamp}\t{device_id}\ttelemetry\t{k}\t{18 + (k + n) % 97 / 10:.1f}\t"
                        f"{40 + k % 20}\t{1000 + k % 30}\t\\N\t\\N\t-{50 + k % 30}\t{k * 10}\t1.2.0\t{stamp}\n"
                    )
                    if len(chunk) == 20000:
                        copy.write("".join(chunk))
                        chunk.clear()
                if chunk:
                    copy.write("".join(chunk))
            if (n + 1) % 10 == 0:
                log(f"queries: loaded {n + 1}/{devices} devices ({(n + 1) * steps:,} rows)")
        loaded = time.perf_counter() - started
        log("queries: rolling up")
        started = time.perf_counter()
        day = start
        while day < end:
            conn.execute("SELECT iots6_refresh_rollups(%s, %s)", (day, min(day + timedelta(days=1), end)))
            day += timedelta(days=1)
        rolled = time.perf_counter() - started
        # Loaded around the ingest (as a restore would be): catch latest_reading up, as after a restore.
        conn.execute("SELECT iots6_refresh_latest_reading()")
        conn.execute("VACUUM ANALYZE")
        hourly = conn.execute("SELECT count(*) FROM sensor_data_1h").fetchone()[0]
    rows = steps * devices
    return {
        "devices": devices,
        "days": days,
        "interval_s": INTERVAL_S,
        "rows": rows,
        "load_seconds": round(loaded, 1),
        "load_rows_per_s": round(rows / loaded),
        "rollup_seconds": round(rolled, 1),
        "hourly_rows": hourly,
    }


def run(stack: Stack, devices: int, days: float) -> dict:
    dbname = stack.database("bench_queries")
    log(f"queries: loading {devices} devices x {days:g} days at {INTERVAL_S} s with COPY")
    loaded = load(stack, dbname, devices, days)
    timings = {}
    with stack.connect(dbname, autocommit=True) as conn:
        for name, (sql, params) in QUERIES.items():
            samples, server, rows = [], [], 0
            for _ in range(RUNS):
                started = time.perf_counter()
                # Binary results, as a dashboard's driver (Grafana's pgx) fetches them; the Python-side decoding of
                # text timestamps would otherwise dominate a 72,000-row answer.
                with conn.cursor(binary=True) as cur:
                    rows = len(cur.execute(sql, params).fetchall())
                samples.append((time.perf_counter() - started) * 1000)
                plan = conn.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql, params).fetchone()[0]
                server.append(plan[0]["Execution Time"])
            timings[name] = {
                "median_ms": round(statistics.median(samples), 1),
                "min_ms": round(min(samples), 1),
                "server_median_ms": round(statistics.median(server), 1),
                "rows": rows,
                "runs": RUNS,
            }
    with stack.connect(dbname, autocommit=True) as conn:
        edition = conn.execute("SELECT edition FROM schema_migrations LIMIT 1").fetchone()[0]
    return {
        "edition": edition,
        "dataset": loaded,
        "queries": timings,
        "sql": {name: sql for name, (sql, _params) in QUERIES.items()},
    }
