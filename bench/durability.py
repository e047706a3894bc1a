"""What the broker's persistence settings cost and what they keep.

Mosquitto holds queued messages in memory and writes ALL of its state (sessions, queued and retained messages,
subscriptions) to ``mosquitto.db`` in one go: on a clean stop, and either every ``autosave_interval`` seconds or,
with ``autosave_on_changes true``, once ``autosave_interval`` changes have accumulated.  For each setting this
starts a broker of its own and measures, with QoS 1 and the ingest's persistent session subscribed:

* ``offline``: the ingest is stopped (a deploy, a crash): N readings are published and PUBACKed while its queue
  grows from 0 to N; then the broker is SIGKILLed right after the last PUBACK and restarted, and the session's
  queue is counted (``survived``).  Every save writes the whole queue, so this is where saving costs most.
* ``online``: a consumer is connected and acknowledging (its queue stays short), N readings published: the
  steady-state cost of saving.

For each: publish rate (the publisher keeps 1000 unacknowledged, like the drain benchmark), the broker's CPU
seconds, the bytes it wrote (``/proc/<pid>/io`` ``write_bytes``, what reached the block layer) and saves made.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import Stack, backlog, device_ids, log, wait_until
from iotctl.broker.accounts import ROLE_INGEST, service_username
from iotctl.errors import OperationFailed
from iotctl.stack.procs import pid_alive
from iots6_platform.core import contract

BASE = contract.DEFAULT_TOPIC_BASE
#: (name, autosave_interval, autosave_on_changes): the old default first, the chosen one (iotctl.stack.mosquitto)
#: is among the others.
SETTINGS = (
    ("every_60_s", 60, False),
    ("every_1_s", 1, False),
    ("every_1000_changes", 1000, True),
    ("every_100_changes", 100, True),
    ("every_change", 1, True),
)
SESSION = "bench-durable"


class BrokerStack(Stack):
    """Only the broker of :class:`bench.harness.Stack` (the publisher and consumers need no database here), with
    the persistence setting under test."""

    def __init__(self, directory: Path, autosave_interval: int, autosave_on_changes: bool):
        super().__init__(
            devices=0,
            directory=directory,
            autosave_interval=autosave_interval,
            autosave_on_changes=autosave_on_changes,
        )

    def _start(self) -> None:
        # Five brokers one after the other on a shared machine: a free port can be taken by someone else before
        # Mosquitto binds it. Try another one then, twice at most.
        for attempt in range(3):
            try:
                self._start_broker()
                return
            except OperationFailed as exc:
                if "Address already in use" not in str(exc) or attempt == 2:
                    raise
                log(f"durability: {exc}; trying another port")
                shutil.rmtree(self.directory / "mqtt", ignore_errors=True)


def _proc_counters(pid: int) -> tuple[float, int]:
    """(CPU seconds, bytes written to storage) of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    written = 0
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            written = int(line.split()[1])
    return cpu, written


def _publish(stack: BrokerStack, messages: list[tuple[str, str]], timeout: float) -> dict:
    pid = stack.mosquitto.pid()
    cpu0, written0 = _proc_counters(pid)
    saves0 = stack.saves_seen
    publisher = stack.operator()
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    sent = 0
    for topic, payload in messages:
        if time.monotonic() > deadline:
            break
        publisher.publish(topic, payload)
        sent += 1
    publisher.wait_acked(sent, timeout=max(60.0, timeout))
    seconds = time.perf_counter() - started
    cpu1, written1 = _proc_counters(pid)
    publisher.close()
    return {
        "published": sent,
        "seconds": round(seconds, 3),
        "msgs_per_s": round(sent / seconds),
        "broker_cpu_s": round(cpu1 - cpu0, 2),
        "broker_mib_written": round((written1 - written0) / 2**20, 1),
        # Polled every millisecond by the inode of mosquitto.db: a lower bound when saves come faster.
        "saves_observed": stack.saves_seen - saves0,
        "truncated_at_s": timeout if sent < len(messages) else None,
    }


def _count_queued(stack: BrokerStack, expected: set[bytes], idle: float = 2.0) -> int:
    """Resume the persistent session and count the distinct ``expected`` payloads the broker delivers, until it
    has them all or has been idle for ``idle`` s (a redelivered online reading whose PUBACK the crash lost is not
    one of them)."""
    seen: set[bytes] = set()
    state = {"count": 0, "last": time.monotonic()}
    lock = threading.Lock()

    def on_message(_client, _userdata, msg):
        with lock:
            if msg.payload in expected:
                seen.add(msg.payload)
            state["count"] = len(seen)
            state["last"] = time.monotonic()

    client = stack.client(
        SESSION,
        service_username(ROLE_INGEST),
        stack.ingest_password,
        clean_start=False,
        session_expiry=3600,
        receive_maximum=8000,
        on_message=on_message,
    )
    try:
        wait_until(
            lambda: state["count"] >= len(expected) or time.monotonic() - state["last"] > idle,
            max(60.0, len(expected) / 1000),
            0.1,
            "queued messages",
        )
    finally:
        client.disconnect()
        client.loop_stop()
    return state["count"]


def _watch_saves(stack: BrokerStack, stop: threading.Event) -> threading.Thread:
    """Count the broker's saves by the inode of mosquitto.db (each save renames a new file over it)."""
    db = stack.mosquitto.data_dir / "mosquitto.db"
    stack.saves_seen = 0

    def run():
        last = None
        while not stop.is_set():
            try:
                inode = db.stat().st_ino
            except FileNotFoundError:
                inode = None
            if inode is not None and inode != last:
                if last is not None:
                    stack.saves_seen += 1
                last = inode
            time.sleep(0.001)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def measure(name: str, interval: int, on_changes: bool, n: int, timeout: float) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="iotctl-bench-durable-"))
    ids = device_ids(50)
    start = datetime.now(UTC) - timedelta(hours=2)
    result: dict = {"autosave_interval": interval, "autosave_on_changes": on_changes}
    with BrokerStack(directory, interval, on_changes) as stack:
        stop = threading.Event()
        watcher = _watch_saves(stack, stop)
        try:
            stack.presubscribe(SESSION, contract.subscription(BASE))
            # Steady state first: a consumer acknowledging as fast as the broker delivers (the ingest, running).
            received = []
            consumer = stack.client(
                SESSION,
                service_username(ROLE_INGEST),
                stack.ingest_password,
                clean_start=False,
                session_expiry=3600,
                receive_maximum=8000,
                on_message=lambda *_a: received.append(1),
            )
            result["online"] = _publish(stack, backlog(ids, n, start), timeout)
            # Everything delivered and acknowledged before the consumer leaves: nothing of it stays queued.
            wait_until(lambda: len(received) >= result["online"]["published"], 60, 0.05, "online deliveries")
            consumer.disconnect()
            consumer.loop_stop()
            # The ingest stopped: everything queues for its session; then the broker crashes.
            messages = backlog(ids, n, start + timedelta(hours=1))
            offline = _publish(stack, messages, timeout)
            published = {payload.encode() for _topic, payload in messages[: offline["published"]]}
            pid = stack.mosquitto.pid()
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not pid_alive(pid), 10, 0.01, "broker killed")
            stack.mosquitto.pid_file.unlink(missing_ok=True)
            stack.mosquitto.start()
            offline["survived_sigkill"] = _count_queued(stack, published)
            result["offline"] = offline
        finally:
            stop.set()
            watcher.join(timeout=5)
    log(
        f"durability {name}: online {result['online']['msgs_per_s']} msg/s, offline "
        f"{result['offline']['msgs_per_s']} msg/s, {result['offline']['survived_sigkill']} of "
        f"{result['offline']['published']} survived SIGKILL"
    )
    return result


def run(n: int, timeout: float = 120.0, settings=SETTINGS) -> dict:
    """Each setting on a broker of its own, one after the other."""
    log(f"durability: {n} readings per scenario, settings {', '.join(s[0] for s in settings)}")
    runs = {name: measure(name, interval, on_changes, n, timeout) for name, interval, on_changes in settings}
    return {
        "messages": n,
        "publisher_window": 1000,
        "settings": runs,
        "method": "QoS 1 from one operator connection (1000 unacknowledged at most); online: a persistent consumer "
        "connected and acking; offline: nobody connected, the session queues everything, then SIGKILL right after "
        "the last PUBACK, restart, and the session's queue is counted. CPU and bytes written from /proc of the "
        "broker; saves counted by the inode of mosquitto.db.",
    }
