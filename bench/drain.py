"""Drain a queued backlog: a receive-only subscriber, a row-at-a-time INSERT+commit consumer, and our ingest (one
worker, two workers on a shared subscription), all from copies of ONE backlog queued in their persistent sessions."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from bench.harness import BASE, Ingest, Stack, backlog, device_ids, log, wait_until
from iotctl.broker.accounts import ROLE_INGEST, service_username
from iots6_platform.core import contract
from iots6_platform.ingest.store import INSERT_ONE

SUB = contract.subscription(BASE)
#: Flow control of every consumer here: the ingest's default INGEST_RECEIVE_MAXIMUM.
RECEIVE_MAXIMUM = 8000


def _commit_span(stack: Stack, dbname: str) -> tuple[int, int, float]:
    """(rows, distinct keys, seconds from the first reading received to the last row committed)."""
    with stack.connect(dbname, autocommit=True) as conn:
        rows, distinct, first, last = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, time, kind, seq)), min(received_at), "
            "max(pg_xact_commit_timestamp(xmin)) FROM sensor_data"
        ).fetchone()
    return rows, distinct, (last - first).total_seconds() if rows else 0.0


def receive_only(stack: Stack, client_id: str, n: int, timeout: float) -> dict:
    """(a) paho, QoS 1, acks each message after the callback, does nothing else."""
    state = {"count": 0, "first": 0.0, "last": 0.0}
    done = threading.Event()

    def on_message(_client, _userdata, _msg):
        now = time.perf_counter()
        if state["count"] == 0:
            state["first"] = now
        state["count"] += 1
        state["last"] = now
        if state["count"] >= n:
            done.set()

    client = stack.client(
        client_id,
        service_username(ROLE_INGEST),
        stack.ingest_password,
        clean_start=False,
        session_expiry=3600,
        receive_maximum=RECEIVE_MAXIMUM,
        on_message=on_message,
    )
    done.wait(timeout)
    client.disconnect()
    client.loop_stop()
    if state["count"] < n:
        raise RuntimeError(f"receive-only subscriber got {state['count']} of {n} messages")
    seconds = state["last"] - state["first"]
    return {"messages": n, "seconds": round(seconds, 3), "msgs_per_s": round(n / seconds)}


def row_at_a_time(stack: Stack, client_id: str, dbname: str, limit: int, max_seconds: float) -> dict:
    """(b) the naive consumer: parse, INSERT one row, commit, then ack (paho acks after the callback returns).

    Bounded: it stops after ``limit`` messages or ``max_seconds``; the rate is extrapolated from what it did.
    """
    conn = stack.connect(dbname)
    state = {"count": 0, "first": 0.0, "last": 0.0}
    stop = threading.Event()

    def on_message(_client, _userdata, msg):
        if stop.is_set():
            return
        now = datetime.now(UTC)
        if state["count"] == 0:
            state["first"] = time.perf_counter()
        _topic, reading = contract.parse_message(BASE, msg.topic, msg.payload, now)
        conn.execute(INSERT_ONE, (*reading, now))
        conn.commit()
        state["count"] += 1
        state["last"] = time.perf_counter()
        if state["count"] >= limit or state["last"] - state["first"] >= max_seconds:
            stop.set()

    client = stack.client(
        client_id,
        service_username(ROLE_INGEST),
        stack.ingest_password,
        clean_start=False,
        session_expiry=3600,
        receive_maximum=RECEIVE_MAXIMUM,
        on_message=on_message,
    )
    stop.wait(max_seconds + 30)
    stop.set()
    client.disconnect()
    client.loop_stop()
    conn.close()
    seconds = state["last"] - state["first"]
    return {
        "messages": state["count"],
        "seconds": round(seconds, 3),
        "msgs_per_s": round(state["count"] / seconds) if seconds else 0,
        "bounded_by": f"first {limit} messages or {max_seconds:g} s, rate extrapolated",
    }


def ingest_drain(
    stack: Stack,
    dbname: str,
    client_ids: list[str],
    n: int,
    timeout: float,
    share_group: str = "",
    profile=None,
) -> dict:
    """(c) the real ingest process(es): time from the first reading received to the last row committed."""
    workers = [Ingest(stack, dbname, cid, share_group).start() for cid in client_ids]
    profiler = profile(workers[0].proc.pid) if profile else None
    try:

        def complete():
            for worker in workers:
                worker.check_alive()
            with stack.connect(dbname, autocommit=True) as conn:
                return conn.execute("SELECT count(*) FROM sensor_data").fetchone()[0] >= n

        wait_until(complete, timeout, 0.2, f"{n} rows in {dbname}")
    finally:
        if profiler is not None:
            profiler.stop()
        for worker in workers:
            worker.stop()
    rows, distinct, seconds = _commit_span(stack, dbname)
    if rows != n or distinct != n:
        raise RuntimeError(f"ingest stored {rows} rows ({distinct} distinct) of {n}")
    result = {
        "messages": n,
        "rows_stored": rows,
        "seconds": round(seconds, 3),
        "msgs_per_s": round(n / seconds),
    }
    if profiler is not None:
        result["profile"] = profiler.report()
    return result


def queue_backlog(stack: Stack, n: int, devices: int, sessions: list[tuple[str, str]]) -> dict:
    """Subscribe every consumer session, then publish the backlog once: each session gets its own copy."""
    for client_id, topic_filter in sessions:
        stack.presubscribe(client_id, topic_filter)
    messages = backlog(device_ids(devices), n, datetime.now(UTC) - timedelta(seconds=10 * (n // devices + 60)))
    publisher = stack.operator()
    started = time.perf_counter()
    for topic, payload in messages:
        publisher.publish(topic, payload)
    publisher.wait_acked(n, timeout=max(120, n / 500))
    seconds = time.perf_counter() - started
    publisher.close()
    return {
        "messages": n,
        "sessions": len(sessions),
        "publish_seconds": round(seconds, 3),
        "publish_msgs_per_s": round(n / seconds),
    }


def run(stack: Stack, n: int, devices: int, row_limit: int, row_seconds: float, profile_factory=None) -> dict:
    timeout = max(120.0, n / 1000)
    sessions = [
        ("bench-recv", SUB),
        ("bench-row", SUB),
        ("bench-ingest", SUB),
        ("bench-scale1-a", f"$share/s1/{SUB}"),
        ("bench-scale2-a", f"$share/s2/{SUB}"),
        ("bench-scale2-b", f"$share/s2/{SUB}"),
    ]
    if profile_factory is not None:
        sessions.append(("bench-profiled", SUB))
    log(f"drain: queueing {n} readings from {devices} devices for {len(sessions)} consumer sessions")
    queued = queue_backlog(stack, n, devices, sessions)
    log(f"drain: published in {queued['publish_seconds']} s; (a) receive-only subscriber")
    a = receive_only(stack, "bench-recv", n, timeout)
    log(f"drain: (a) {a['msgs_per_s']} msg/s; (b) row-at-a-time INSERT+commit")
    b = row_at_a_time(stack, "bench-row", stack.database("bench_row"), row_limit, row_seconds)
    log(f"drain: (b) {b['msgs_per_s']} msg/s; (c) ingest")
    c = ingest_drain(stack, stack.database("bench_ingest"), ["bench-ingest"], n, timeout)
    log(f"drain: (c) {c['msgs_per_s']} msg/s; scale-out 1 worker")
    one = ingest_drain(stack, stack.database("bench_scale1"), ["bench-scale1-a"], n, timeout, "s1")
    log(f"drain: 1 worker {one['msgs_per_s']} msg/s; 2 workers")
    two = ingest_drain(stack, stack.database("bench_scale2"), ["bench-scale2-a", "bench-scale2-b"], n, timeout, "s2")
    log(f"drain: 2 workers {two['msgs_per_s']} msg/s")
    result = {
        "drain": {
            "backlog": queued,
            "devices": devices,
            "publisher": "one bench-only account (may publish on iots6/#) publishing on the devices' telemetry topics",
            "receive_maximum": RECEIVE_MAXIMUM,
            "a_receive_only": a,
            "b_row_at_a_time": b,
            "c_ingest": c,
            "ratio_c_a": round(c["msgs_per_s"] / a["msgs_per_s"], 3),
            "ratio_c_b": round(c["msgs_per_s"] / b["msgs_per_s"], 1),
        },
        "scale_out": {
            "messages": n,
            "one_worker": one,
            "two_workers": two,
            "ratio_2_1": round(two["msgs_per_s"] / one["msgs_per_s"], 3),
        },
    }
    if profile_factory is not None:
        log("drain: profiled ingest run (py-spy)")
        profiled = ingest_drain(
            stack, stack.database("bench_profiled"), ["bench-profiled"], n, timeout, profile=profile_factory
        )
        result["profile"] = {"msgs_per_s_while_sampled": profiled["msgs_per_s"], **profiled["profile"]}
    return result
