"""Drain a queued backlog: three receive-only subscribers (Mosquitto's own C client ``mosquitto_sub``, paho
MQTT 3.1.1 in ``loop_forever``, paho MQTT 5 in a ``loop_start`` thread), a row-at-a-time INSERT+commit consumer, and
our ingest (one worker, two workers on a shared subscription), all from copies of ONE backlog queued in their
persistent sessions, consumed one after the other.

``python -m bench.drain`` runs the drain alone, for development: ``--compare NAME=DIR`` adds an ingest run from
another source tree (``DIR`` holding ``iots6_platform``, e.g. ``git archive`` of a commit's ``services/``), so an
optimisation's before and after are measured on the same backlog in the same run.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.harness import BASE, SESSION_EXPIRY_S, Ingest, Stack, backlog, device_ids, log, wait_until
from iotctl.broker.accounts import ROLE_INGEST, service_username
from iotctl.secretfiles import write_secret
from iots6_platform.core import contract
from iots6_platform.ingest.store import INSERT_ONE

SUB = contract.subscription(BASE)
_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on: field k is at index k - 3."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].decode().split()


def cpu_seconds(pid: int, tree: bool = False) -> float:
    """CPU (user + system) a process used so far; ``tree``: with its children, live (their own) and reaped (the
    parent's cutime/cstime): a PostgreSQL server is its postmaster's tree."""
    fields = _stat(pid)
    ticks = int(fields[11]) + int(fields[12])
    if tree:
        ticks += int(fields[13]) + int(fields[14])
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    child = _stat(int(entry.name))
                except OSError:
                    continue
                if child[1] == str(pid):
                    ticks += int(child[11]) + int(child[12])
    return ticks / _TICK


class CpuMeter:
    """CPU seconds of the broker and the database server (and optionally one more process) between samples."""

    def __init__(self, stack: Stack, pid: int | None = None):
        self.broker, self.database, self.pid = stack.mosquitto.pid(), stack.postgres.pid(), pid

    def sample(self) -> dict[str, float]:
        out = {"broker": cpu_seconds(self.broker), "database": cpu_seconds(self.database, tree=True)}
        if self.pid is not None:
            out["ingest"] = cpu_seconds(self.pid)
        return out


def cpu_per_message(before: dict[str, float], after: dict[str, float], messages: int) -> dict[str, float]:
    """Microseconds of CPU per message of each process between two samples."""
    if messages <= 0:
        return {}
    return {name: round((after[name] - before[name]) / messages * 1e6, 1) for name in after}


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


def mosquitto_sub(stack: Stack, client_id: str, n: int, timeout: float) -> dict:
    """Mosquitto's own C client, MQTT 5, QoS 1, resuming its session: receive, ack, print a timestamp per message.

    The password reaches it in its options file (``$XDG_CONFIG_HOME/mosquitto_sub``), never on its command line.
    Rate = N / (last - first message), from the ``%U`` (Unix time, ns) it prints for each message.
    """
    binary = shutil.which("mosquitto_sub")
    if binary is None:
        raise RuntimeError("`mosquitto_sub` not found on PATH; install it (apt-get install mosquitto-clients).")
    home = Path(tempfile.mkdtemp(prefix="bench-msub-", dir=stack.directory))
    write_secret(home / "mosquitto_sub", f"-u {service_username(ROLE_INGEST)}\n-P {stack.ingest_password}\n")
    out = home / "times.txt"
    argv = [binary, "-h", "127.0.0.1", "-p", str(stack.mosquitto.port), "-V", "mqttv5", "-i", client_id, "-c"]
    argv += ["-x", str(SESSION_EXPIRY_S), "-q", "1", "-t", SUB, "-C", str(n), "-F", "%U", "-W", str(int(timeout))]
    meter = CpuMeter(stack)
    before, children = meter.sample(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "wb") as sink:
        proc = subprocess.run(argv, env={**os.environ, "XDG_CONFIG_HOME": str(home)}, stdout=sink, check=False)
    after, used = meter.sample(), resource.getrusage(resource.RUSAGE_CHILDREN)
    after["mosquitto_sub"] = used.ru_utime + used.ru_stime
    before["mosquitto_sub"] = children.ru_utime + children.ru_stime
    lines = out.read_bytes().split()
    if proc.returncode != 0 or len(lines) < n:
        raise RuntimeError(f"mosquitto_sub got {len(lines)} of {n} messages (exit code {proc.returncode})")
    seconds = float(lines[-1]) - float(lines[0])
    shutil.rmtree(home, ignore_errors=True)
    cpu = cpu_per_message(before, after, n)
    return {"messages": n, "seconds": round(seconds, 3), "msgs_per_s": round(n / seconds), "cpu_us_per_msg": cpu}


def paho_311(stack: Stack, client_id: str, n: int, timeout: float) -> dict:
    """paho, MQTT 3.1.1, ``loop_forever`` on the calling thread, QoS 1: receive and ack (after the callback).

    Its session was created with MQTT 5 (``presubscribe``); a 3.1.1 client with clean session off resumes it."""
    state = {"count": 0, "first": 0.0, "last": 0.0}

    def on_message(client, _userdata, _msg):
        now = time.perf_counter()
        if state["count"] == 0:
            state["first"] = now
        state["count"] += 1
        state["last"] = now
        if state["count"] >= n:
            client.disconnect()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311, clean_session=False)
    client.username_pw_set(service_username(ROLE_INGEST), stack.ingest_password)
    client.on_message = on_message
    client.connect("127.0.0.1", stack.mosquitto.port, keepalive=60)
    timer = threading.Timer(timeout, client.disconnect)
    timer.start()
    try:
        client.loop_forever()
    finally:
        timer.cancel()
    if state["count"] < n:
        raise RuntimeError(f"paho 3.1.1 subscriber got {state['count']} of {n} messages")
    seconds = state["last"] - state["first"]
    return {"messages": n, "seconds": round(seconds, 3), "msgs_per_s": round(n / seconds)}


def receive_only(stack: Stack, client_id: str, n: int, timeout: float) -> dict:
    """(a) paho, MQTT 5, network loop in a ``loop_start`` thread, QoS 1, acks each message after the callback,
    does nothing else."""
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
        reading = contract.parse_message(BASE, msg.topic, msg.payload, now).reading
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


#: Rows inserted into sensor_data's partitions so far, from the statistics (PostgreSQL flushes them at least once a
#: second): polling ``count(*)`` instead scanned the growing table 4 times a second, CPU the database then lacked.
ROWS_INSERTED = (
    "SELECT coalesce(sum(s.n_tup_ins), 0) FROM pg_stat_user_tables AS s JOIN pg_inherits AS i ON i.inhrelid = s.relid "
    "WHERE i.inhparent = 'sensor_data'::regclass"
)


def ingest_drain(
    stack: Stack,
    dbname: str,
    client_ids: list[str],
    n: int,
    timeout: float,
    share_group: str = "",
    profile=None,
    source: Path | None = None,
) -> dict:
    """(c) the real ingest process(es): time from the first reading received to the last row committed.

    CPU per message of the ingest (the first worker), the broker and the database server, between the samples
    taken when 10 % and 90 % of the backlog was committed (so neither start-up nor the last flush counts; the rows
    committed by each sample's time come from the rows' commit timestamps afterwards): on a shared machine the rate
    depends on what else runs, the CPU each message costs much less.

    ``source``: run the ``iots6_platform`` found in that directory instead of the installed one (``--compare``)."""
    env = {"PYTHONPATH": str(source)} if source is not None else {}
    workers = [Ingest(stack, dbname, cid, share_group, extra_env=env).start() for cid in client_ids]
    profiler = profile(workers[0].proc.pid) if profile else None
    meter = CpuMeter(stack, workers[0].proc.pid)
    samples: list[tuple[datetime, dict[str, float]]] = []
    try:
        with stack.connect(dbname, autocommit=True) as poll:

            def complete():
                for worker in workers:
                    worker.check_alive()
                samples.append((datetime.now(UTC), meter.sample()))
                return poll.execute(ROWS_INSERTED).fetchone()[0] >= n

            wait_until(complete, timeout, 0.25, f"{n} rows in {dbname}")
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
    if len(workers) == 1:
        result["cpu_us_per_msg"] = _cpu_while_draining(stack, dbname, n, samples)
    if profiler is not None:
        result["profile"] = profiler.report()
    return result


def _cpu_while_draining(stack: Stack, dbname: str, n: int, samples: list) -> dict[str, float]:
    """CPU per message between the first sample with >= 10 % and the last with <= 90 % of ``n`` committed."""
    with stack.connect(dbname, autocommit=True) as conn:
        committed = [row[0] for row in conn.execute("SELECT pg_xact_commit_timestamp(xmin) AS t FROM sensor_data")]
    committed.sort()
    counted = [(bisect.bisect_right(committed, when), cpu) for when, cpu in samples]
    window = [(rows, cpu) for rows, cpu in counted if n // 10 <= rows <= n * 9 // 10]
    if len(window) < 2 or window[-1][0] == window[0][0]:
        return {}  # drained too fast for the poll interval
    (first_rows, first), (last_rows, last) = window[0], window[-1]
    return cpu_per_message(first, last, last_rows - first_rows)


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


#: The drain's consumers, in the order they run, with their persistent sessions.
RECEIVERS = ("bench-msub", "bench-paho311", "bench-recv")


def run(
    stack: Stack,
    n: int,
    devices: int,
    row_limit: int,
    row_seconds: float,
    profile_factory=None,
    compare: dict[str, Path] | None = None,
    scale_out: bool = True,
) -> dict:
    timeout = max(120.0, n / 1000)
    compare = compare or {}
    sessions = [(cid, SUB) for cid in RECEIVERS] + [("bench-row", SUB), ("bench-ingest", SUB)]
    sessions += [(f"bench-compare-{name}", SUB) for name in compare]
    if scale_out:
        sessions += [
            ("bench-scale1-a", f"$share/s1/{SUB}"),
            ("bench-scale2-a", f"$share/s2/{SUB}"),
            ("bench-scale2-b", f"$share/s2/{SUB}"),
        ]
    if profile_factory is not None:
        sessions.append(("bench-profiled", SUB))
    log(f"drain: queueing {n} readings from {devices} devices for {len(sessions)} consumer sessions")
    queued = queue_backlog(stack, n, devices, sessions)
    log(f"drain: published in {queued['publish_seconds']} s; mosquitto_sub receive-only")
    msub = mosquitto_sub(stack, "bench-msub", n, timeout)
    log(f"drain: mosquitto_sub {msub['msgs_per_s']} msg/s; paho 3.1.1 loop_forever receive-only")
    p311 = paho_311(stack, "bench-paho311", n, timeout)
    log(f"drain: paho 3.1.1 {p311['msgs_per_s']} msg/s; (a) paho 5 loop_start receive-only")
    a = receive_only(stack, "bench-recv", n, timeout)
    log(f"drain: (a) {a['msgs_per_s']} msg/s; (b) row-at-a-time INSERT+commit")
    b = row_at_a_time(stack, "bench-row", stack.database("bench_row"), row_limit, row_seconds)
    log(f"drain: (b) {b['msgs_per_s']} msg/s; (c) ingest")
    c = ingest_drain(stack, stack.database("bench_ingest"), ["bench-ingest"], n, timeout)
    log(f"drain: (c) {c['msgs_per_s']} msg/s")
    drain = {
        "backlog": queued,
        "devices": devices,
        "publisher": "one bench-only account (may publish on iots6/#) publishing on the devices' telemetry topics",
        "receive_maximum": RECEIVE_MAXIMUM,
        "mosquitto_sub": msub,
        "paho_311_loop_forever": p311,
        "a_receive_only": a,
        "b_row_at_a_time": b,
        "c_ingest": c,
        "ratio_c_mosquitto_sub": round(c["msgs_per_s"] / msub["msgs_per_s"], 3),
        "ratio_c_paho_311": round(c["msgs_per_s"] / p311["msgs_per_s"], 3),
        "ratio_c_a": round(c["msgs_per_s"] / a["msgs_per_s"], 3),
        "ratio_c_b": round(c["msgs_per_s"] / b["msgs_per_s"], 1),
    }
    for name, source in compare.items():
        log(f"drain: ingest from {source} ({name})")
        other = ingest_drain(
            stack, stack.database(f"bench_compare_{name}"), [f"bench-compare-{name}"], n, timeout, source=source
        )
        other["ratio_to_mosquitto_sub"] = round(other["msgs_per_s"] / msub["msgs_per_s"], 3)
        drain.setdefault("compare", {})[name] = other
        log(f"drain: {name} {other['msgs_per_s']} msg/s")
    result = {"drain": drain}
    if scale_out:
        log("drain: scale-out 1 worker")
        one = ingest_drain(stack, stack.database("bench_scale1"), ["bench-scale1-a"], n, timeout, "s1")
        log(f"drain: 1 worker {one['msgs_per_s']} msg/s; 2 workers")
        two = ingest_drain(
            stack, stack.database("bench_scale2"), ["bench-scale2-a", "bench-scale2-b"], n, timeout, "s2"
        )
        log(f"drain: 2 workers {two['msgs_per_s']} msg/s")
        result["scale_out"] = {
            "messages": n,
            "one_worker": one,
            "two_workers": two,
            "ratio_2_1": round(two["msgs_per_s"] / one["msgs_per_s"], 3),
        }
    if profile_factory is not None:
        log("drain: profiled ingest run (py-spy)")
        profiled = ingest_drain(
            stack, stack.database("bench_profiled"), ["bench-profiled"], n, timeout, profile=profile_factory
        )
        result["profile"] = {"msgs_per_s_while_sampled": profiled["msgs_per_s"], **profiled["profile"]}
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.drain``: the drain alone (no scale-out, latency, queries or durability), JSON on stdout."""
    parser = argparse.ArgumentParser(prog="python -m bench.drain", description=main.__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="backlog size")
    parser.add_argument("--devices", type=int, default=100, help="device identities in the backlog")
    parser.add_argument("--row-limit", type=int, default=2_000, help="the row-at-a-time consumer stops after ...")
    parser.add_argument("--row-seconds", type=float, default=5.0, help="... this many messages or seconds")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also drain with the iots6_platform package found in DIR (repeatable)",
    )
    parser.add_argument("--profile", action="store_true", help="sample an extra ingest drain with py-spy")
    args = parser.parse_args(argv)
    compare = {}
    for item in args.compare:
        name, sep, directory = item.partition("=")
        if not sep or not (Path(directory) / "iots6_platform").is_dir():
            parser.error(f"--compare {item!r}: expected NAME=DIR with DIR/iots6_platform")
        compare[name] = Path(directory).resolve()
    from bench.profile import PySpy

    with Stack(devices=args.devices) as stack:
        result = run(
            stack,
            args.n,
            args.devices,
            args.row_limit,
            args.row_seconds,
            PySpy if args.profile else None,
            compare,
            scale_out=False,
        )
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
