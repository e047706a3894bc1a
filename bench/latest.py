"""Latest values of a fleet at two retentions (#16 goal 3): each device's newest reading read from
``latest_reading`` (migration 0007, what the fleet view, the dashboards' "now" panels and ``tail`` use) and, for
comparison, the old way: the newest row of ``sensor_data`` per device (one backward index probe per device and
partition, so it grows with the retention).

The data set is generated in the server (``generate_series``): ``devices`` devices with a reading every
``interval_s`` seconds, first the newest ``days[0]`` days, measured, then older readings back to ``days[-1]`` days,
measured again.  The scan's cost is index descents per device and partition, not rows, so a sparse interval keeps
the load short without flattering it.  ``latest_reading`` is filled by ``iots6_refresh_latest_reading()`` (as after a
restore; the ingest keeps it itself, tests/integration/test_latest_reading.py), and that back-fill is timed too.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

from bench.harness import Stack, device_ids, log

RUNS = 21
SCAN_RUNS = 5

QUERIES = {
    # The fleet view / "now" panels: registered devices with their newest values.
    "latest_reading": (
        "SELECT d.device_id, l.time, l.temperature, l.humidity, l.pressure, l.motion, l.switch FROM devices AS d "
        "JOIN latest_reading AS l USING (device_id) WHERE d.retired_at IS NULL"
    ),
    # The same answer from the raw readings, as before 0007.
    "scan_sensor_data": (
        "SELECT d.device_id, s.time, s.temperature, s.humidity, s.pressure, s.motion, s.switch FROM devices AS d "
        "CROSS JOIN LATERAL (SELECT time, temperature, humidity, pressure, motion, switch FROM sensor_data AS r "
        "WHERE r.device_id = d.device_id ORDER BY r.time DESC, r.kind DESC, r.seq DESC LIMIT 1) AS s "
        "WHERE d.retired_at IS NULL"
    ),
}

GENERATE = """
INSERT INTO sensor_data (time, device_id, kind, seq, temperature, humidity, pressure, motion, switch, rssi,
                         uptime_s, fw, received_at)
SELECT t, d, 'telemetry', extract(epoch FROM t)::bigint,
       18 + (extract(epoch FROM t)::bigint / %(step)s + i) %% 97 / 10.0, 40 + i %% 20, 1000 + i %% 30,
       false, true, -50 - i %% 30, 0, '1.2.0', t
FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS u(d, i)
CROSS JOIN generate_series(%(start)s::timestamptz, %(end)s::timestamptz, make_interval(secs => %(step)s)) AS t
"""


def _generate(conn, ids: list[str], start: datetime, end: datetime, step: int) -> int:
    conn.execute("SELECT iots6_ensure_partitions(%s, %s)", (start, end + timedelta(days=1)))
    rows = 0
    for k in range(0, len(ids), 100):  # 100 devices per statement: bounded transactions, visible progress
        cur = conn.execute(GENERATE, {"ids": ids[k : k + 100], "start": start, "end": end, "step": step})
        rows += cur.rowcount
    return rows


def _measure(conn) -> dict:
    out = {}
    for name, sql in QUERIES.items():
        runs = RUNS if name == "latest_reading" else SCAN_RUNS
        samples, server, rows = [], [], 0
        with conn.cursor(binary=True) as cur:
            cur.execute(sql).fetchall()  # warm-up, not counted
        for _ in range(runs):
            started = time.perf_counter()
            with conn.cursor(binary=True) as cur:
                rows = len(cur.execute(sql).fetchall())
            samples.append((time.perf_counter() - started) * 1000)
            plan = conn.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql).fetchone()[0]
            server.append(plan[0]["Execution Time"])
        out[name] = {
            "median_ms": round(statistics.median(samples), 2),
            "p95_ms": round(sorted(samples)[max(0, int(len(samples) * 0.95) - 1)], 2),
            "server_median_ms": round(statistics.median(server), 2),
            "rows": rows,
            "runs": runs,
        }
    return out


def run(stack: Stack, devices: int, days: tuple[float, ...], interval_s: int) -> dict:
    dbname = stack.database("bench_latest")
    ids = device_ids(devices)
    end = datetime.now(UTC).replace(microsecond=0)
    end -= timedelta(seconds=end.second % interval_s)
    result: dict = {"devices": devices, "interval_s": interval_s, "sql": QUERIES, "retention": {}}
    loaded_to = end
    with stack.connect(dbname, autocommit=True) as conn:
        # This copy holds exactly the measured fleet (the template registers every device of every run).
        conn.execute("DELETE FROM devices WHERE device_id <> ALL(%s)", (ids,))
        for span in sorted(days):
            start = end - timedelta(days=span)
            log(f"latest: generating {devices} devices x {span:g} days at {interval_s} s")
            started = time.perf_counter()
            rows = _generate(conn, ids, start, loaded_to - timedelta(seconds=interval_s), interval_s)
            loaded = time.perf_counter() - started
            loaded_to = start
            started = time.perf_counter()
            changed = conn.execute("SELECT iots6_refresh_latest_reading()").fetchone()[0]
            refreshed = time.perf_counter() - started
            conn.execute("VACUUM ANALYZE")
            total = conn.execute("SELECT count(*) FROM sensor_data").fetchone()[0]
            partitions = conn.execute(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'sensor_data'::regclass"
            ).fetchone()[0]
            measured = _measure(conn)
            scan, latest = measured["scan_sensor_data"]["median_ms"], measured["latest_reading"]["median_ms"]
            log(f"latest: {span:g} days, {total:,} rows: latest_reading {latest} ms, scan {scan} ms")
            result["retention"][f"{span:g}d"] = {
                "days": span,
                "rows": total,
                "partitions": partitions,
                "generated_rows": rows,
                "generate_seconds": round(loaded, 1),
                "refresh_latest_seconds": round(refreshed, 2),
                "refresh_latest_changed": changed,
                "queries": measured,
            }
    return result
