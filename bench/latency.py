"""Publish→committed latency at a steady rate: each payload's ``ts`` is the publish time (taken just before
``publish``), each row's commit time is ``pg_xact_commit_timestamp(xmin)`` (``track_commit_timestamp = on``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from bench.harness import BASE, Ingest, Stack, device_ids, log, wait_until
from iotctl.stack.procs import free_port
from iots6_platform.core import contract

PERCENTILES = """
SELECT count(*),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms),
       max(ms),
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY recv_ms)
FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - time) * 1000 AS ms,
             extract(epoch FROM received_at - time) * 1000 AS recv_ms
      FROM sensor_data) AS t
"""


def run(stack: Stack, rate: int, devices: int, seconds: float) -> dict:
    dbname = stack.database("bench_latency")
    client_id = "bench-latency"
    stack.presubscribe(client_id, contract.subscription(BASE))
    worker = Ingest(stack, dbname, client_id, http_port=free_port()).start()
    try:
        wait_until(worker.healthy, 30, 0.1, "ingest health")
        time.sleep(1.0)  # let the start-up maintenance run finish before the clock starts
        ids = device_ids(devices)
        topics = [contract.topic(BASE, d, contract.TELEMETRY) for d in ids]
        total = int(rate * seconds)
        log(f"latency: {rate} msg/s from {devices} devices for {seconds:g} s")
        publisher = stack.operator()
        started = time.perf_counter()
        late = 0.0
        for k in range(total):
            target = started + k / rate
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                late = max(late, -delay)
            i = k % devices
            reading = contract.Reading(
                datetime.now(UTC),
                ids[i],
                "telemetry",
                k // devices,
                21.0,
                40.0,
                1010.0,
                None,
                None,
                -55,
                k,
                "1.2.0",
            )
            publisher.publish(topics[i], contract.make_payload(reading))
        achieved = total / (time.perf_counter() - started)
        publisher.wait_acked(total, 60)
        publisher.close()

        def complete():
            worker.check_alive()
            with stack.connect(dbname, autocommit=True) as conn:
                return conn.execute("SELECT count(*) FROM sensor_data").fetchone()[0] >= total

        wait_until(complete, 60, 0.2, f"{total} latency rows")
    finally:
        worker.stop()
    with stack.connect(dbname, autocommit=True) as conn:
        rows, (p50, p95, p99), worst, (r50, r99) = conn.execute(PERCENTILES).fetchone()
    return {
        "rate_target": rate,
        "rate_achieved": round(achieved),
        "publisher_max_lag_ms": round(late * 1000, 1),
        "devices": devices,
        "seconds": seconds,
        "rows": rows,
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "p99_ms": round(p99, 1),
        "max_ms": round(float(worst), 1),
        "publish_to_received_p50_ms": round(r50, 1),
        "publish_to_received_p99_ms": round(r99, 1),
        "method": "payload ts = wall clock just before publish (ms precision, so latencies read up to 1 ms high); "
        "commit = pg_xact_commit_timestamp(xmin) of each row (track_commit_timestamp=on); same host clock",
    }
