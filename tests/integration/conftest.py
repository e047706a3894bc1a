"""Fixtures for the data-path tests: the real ingest service as a child process, devices that publish."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from iotctl.secretfiles import write_secret
from iotctl.stack.layout import StackLayout
from iotctl.stack.mosquitto import MosquittoServer
from iotctl.stack.procs import free_port, pid_alive

REPO = Path(__file__).resolve().parents[2]


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start_stack_broker(state: Path, port: int | None = None) -> tuple[MosquittoServer, dict[str, str]]:
    """The native stack's Mosquitto alone in ``state`` (``NativeStack.ensure_broker``: what `iotctl stack up` does
    for the broker, without PostgreSQL and the services). Returns it and the stack's secrets by name."""
    from iotctl.settings import Settings
    from iotctl.stack.native import SECRET_NAMES, NativeStack

    port = port or free_port()
    NativeStack(Settings(state_dir=state, mqtt_port=port, engine="system")).ensure_broker("system")
    layout = StackLayout(state)
    secrets = {name: layout.secret(name).read_text().strip() for name in SECRET_NAMES}
    return MosquittoServer(layout.mosquitto_dir, port), secrets


@dataclass
class IngestProcess:
    env: dict[str, str]
    log: Path
    http_port: int
    proc: subprocess.Popen | None = None
    runs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, wait: bool = True) -> IngestProcess:
        out = open(self.log, "ab")  # noqa: SIM115 (closed when the process is reaped)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "iots6_platform.ingest"],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        out.close()
        self.runs.append(self.proc)
        if wait:
            wait_until(self.healthy, 20, 0.1, f"ingest health (log {self.log})")
        return self

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)
        except OSError:
            return 0, {}

    def healthy(self) -> bool:
        return self.health()[0] == 200

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=2) as resp:
            return resp.read().decode()

    def metric(self, name: str) -> float:
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.runs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def ingest_factory(broker, database, tmp_path) -> Iterator:
    """Start ingest workers against the fixture broker and this test's database."""
    started: list[IngestProcess] = []
    pw_file = write_secret(tmp_path / "ingest.password", broker.ingest[1])
    db_pw_file = write_secret(tmp_path / "db.password", database.password)

    def make(index: int = 1, **overrides: str) -> IngestProcess:
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "INGEST_MQTT_HOST": "127.0.0.1",
            "INGEST_MQTT_PORT": str(broker.port),
            "INGEST_MQTT_USERNAME": broker.ingest[0],
            "INGEST_MQTT_PASSWORD_FILE": str(pw_file),
            "INGEST_DATABASE_URL": database.url,
            "INGEST_DATABASE_PASSWORD_FILE": str(db_pw_file),
            # Unique per test: persistent sessions and shared groups of other tests stay separate.
            "INGEST_CLIENT_ID": f"ingest-{database.name}-{index}",
            "INGEST_HTTP_PORT": str(port),
            "INGEST_FLUSH_MS": "20",
            "INGEST_ROLLUP_INTERVAL_S": "1",
            "INGEST_LOG_LEVEL": "INFO",
        }
        env.update(overrides)
        worker = IngestProcess(env, tmp_path / f"ingest-{index}.log", port)
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.stop()


@pytest.fixture
def ingest(ingest_factory) -> IngestProcess:
    return ingest_factory().start()


class Device:
    """A device publishing with its own broker account (QoS 1, waits for PUBACKs)."""

    def __init__(self, broker, device_id: str, password: str, persistent: bool = False):
        self.device_id = device_id
        self.acked: set[int] = set()
        self.refused: dict[int, str] = {}
        self.cond = threading.Condition()
        # The broker accepts a device only with client id = username = device id.
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=paho.MQTTv5)
        self.client.username_pw_set(device_id, password)
        self.client.on_publish = self._on_publish
        self.client.reconnect_delay_set(0.2, 2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600 if persistent else 0
        self.client.connect(broker.host, broker.port, keepalive=30, clean_start=not persistent, properties=props)
        self.client.loop_start()
        wait_until(self.client.is_connected, 5, what=f"{device_id} connected")

    def _on_publish(self, _client, _userdata, mid, reason_code, _props):
        with self.cond:
            if reason_code.is_failure:
                self.refused[mid] = str(reason_code)
            self.acked.add(mid)
            self.cond.notify_all()

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> int:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return info.mid

    def wait_acked(self, mids, timeout: float = 30) -> None:
        mids = set(mids)
        with self.cond:
            ok = self.cond.wait_for(lambda: mids <= self.acked, timeout)
        assert ok, f"{len(mids - self.acked)} publishes not acknowledged by the broker"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def provision(broker, database):
    """Create a device: broker account (with ACL) and a row in `devices`. Returns a connected Device."""
    made: list[Device] = []

    def make(device_id: str, persistent: bool = False, register: bool = True) -> Device:
        password = broker.add_device(device_id)
        if register:
            with database.connect(autocommit=True) as conn:
                conn.execute("INSERT INTO devices (device_id) VALUES (%s) ON CONFLICT DO NOTHING", (device_id,))
        device = Device(broker, device_id, password, persistent)
        made.append(device)
        return device

    yield make
    for device in made:
        device.close()


def count_rows(database, sql: str, params=()) -> int:
    with database.connect(autocommit=True) as conn:
        return conn.execute(sql, params).fetchone()[0]


def process_alive(pid: int) -> bool:
    return pid_alive(pid)
