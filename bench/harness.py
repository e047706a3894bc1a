"""The benchmark's own stack: Mosquitto and PostgreSQL in a temp dir on free ports, accounts, databases, consumers'
persistent sessions, a fast QoS 1 publisher and the real ingest process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from iotctl.broker import dynsec
from iotctl.broker.accounts import ROLE_INGEST, ROLE_OPERATOR, service_username
from iotctl.broker.pwhash import PasswordHash
from iotctl.secretfiles import write_secret
from iotctl.stack.mosquitto import MosquittoServer
from iotctl.stack.postgres import PostgresServer
from iotctl.stack.procs import free_port
from iots6_platform.core import contract
from iots6_platform.core.db import migrate

REPO = Path(__file__).resolve().parents[1]
BASE = contract.DEFAULT_TOPIC_BASE
DB_OWNER = "iots6"
TEMPLATE = "bench_template"
SESSION_EXPIRY_S = 3600
#: The bench's own publisher: one connection allowed to publish on every device's topics (no product account may;
#: one connection publishes a 100k backlog in seconds, where 100 device connections would measure the publisher).
PUBLISHER = "bench.publisher"


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the JSON document."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def device_ids(count: int) -> list[str]:
    return [f"bench-{i:04d}" for i in range(count)]


@dataclass
class Stack:
    """Mosquitto + PostgreSQL (fsync on, ``track_commit_timestamp`` on) private to one benchmark run."""

    devices: int
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="iotctl-bench-")))
    mosquitto: MosquittoServer | None = None
    postgres: PostgresServer | None = None
    db_password: str = field(default_factory=lambda: uuid.uuid4().hex)
    ingest_password: str = ""
    operator_password: str = ""
    publisher_password: str = ""
    # Saves every 60 s, not after every 100 changes as deployed: the drain queues 100k readings for 7 sessions, and
    # rewriting that whole queue every 100 of them would measure the broker's persistence, not the ingest.
    # bench/durability.py measures what the deployed setting costs, on brokers of its own.
    autosave_interval: int = 60
    autosave_on_changes: bool = False

    def __enter__(self) -> Stack:
        # As root, PostgreSQL runs as `postgres`, who must reach its directory (mkdtemp makes it 0700).
        os.chmod(self.directory, 0o755)
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc) -> None:
        if self.postgres is not None:
            try:
                self.postgres.stop(mode="immediate")
            except Exception as exc:  # keep going: the broker must stop too
                log(f"postgres stop failed: {exc}")
        if self.mosquitto is not None:
            self.mosquitto.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _start(self) -> None:
        log(f"starting Mosquitto and PostgreSQL in {self.directory}")
        self._start_broker()
        self._start_postgres()

    def _start_broker(self) -> None:
        self.mosquitto = MosquittoServer(
            self.directory / "mqtt",
            free_port(),
            autosave_interval=self.autosave_interval,
            autosave_on_changes=self.autosave_on_changes,
        )
        self.mosquitto.directory.mkdir(mode=0o700)
        # The broker's dynamic-security state seeded once with every account (device clients and their roles
        # too, so the broker holds what a real fleet's does).
        self.ingest_password, self.operator_password = uuid.uuid4().hex, uuid.uuid4().hex
        self.publisher_password = uuid.uuid4().hex
        devices = {device_id: PasswordHash.create(uuid.uuid4().hex) for device_id in device_ids(self.devices)}
        services = {ROLE_INGEST: self.ingest_password, ROLE_OPERATOR: self.operator_password}
        state = dynsec.seed_state(uuid.uuid4().hex, BASE, services, devices)
        state["roles"].append(
            {"rolename": PUBLISHER, "acls": [{"acltype": "publishClientSend", "topic": f"{BASE}/#", "allow": True}]}
        )
        state["clients"].append(
            {
                "username": PUBLISHER,
                **PasswordHash.create(self.publisher_password).dynsec(),
                "roles": [{"rolename": PUBLISHER}],
            }
        )
        self.mosquitto.data_dir.mkdir(mode=0o700)
        write_secret(self.mosquitto.state_file, json.dumps(state) + "\n")
        self.mosquitto.start()

    def _start_postgres(self) -> None:
        self.postgres = PostgresServer(
            self.directory / "pg",
            free_port(),
            fsync=True,
            # Exact commit time of every row (pg_xact_commit_timestamp(xmin)) for the rate and latency figures.
            extra_settings={
                "track_commit_timestamp": "on",
                "max_wal_size": "4GB",
                "checkpoint_timeout": "15min",
            },
        )
        self.postgres.start()
        self.postgres.ensure_database(TEMPLATE, DB_OWNER, self.db_password)
        with self.connect(TEMPLATE, autocommit=True) as conn:
            migrate.migrate(conn)
            with conn.cursor().copy("COPY devices (device_id) FROM STDIN") as copy:
                for device_id in device_ids(self.devices):
                    copy.write_row((device_id,))
        self.secrets = self.directory / "secrets"
        self.secrets.mkdir(mode=0o700)
        self.ingest_password_file = write_secret(self.secrets / "ingest.password", self.ingest_password)
        self.db_password_file = write_secret(self.secrets / "db.password", self.db_password)

    # -- databases
    def conninfo(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.postgres.port} user={DB_OWNER} password={self.db_password} dbname={dbname}"

    def url(self, dbname: str) -> str:
        return f"postgresql://{DB_OWNER}@127.0.0.1:{self.postgres.port}/{dbname}"

    def connect(self, dbname: str, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(dbname), **kwargs)

    def database(self, name: str) -> str:
        """A fresh copy of the migrated template (schema + the benchmark's devices)."""
        with psycopg.connect(self.postgres.superuser_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}" OWNER {DB_OWNER}')
        return name

    # -- MQTT
    def client(
        self,
        client_id: str,
        username: str,
        password: str,
        *,
        clean_start: bool = True,
        session_expiry: int = 0,
        receive_maximum: int | None = None,
        manual_ack: bool = False,
        on_message=None,
        max_inflight: int | None = None,
    ) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5, manual_ack=manual_ack
        )
        client.username_pw_set(username, password)
        if max_inflight:
            client.max_inflight_messages_set(max_inflight)
            client.max_queued_messages_set(0)
        if on_message is not None:
            client.on_message = on_message
        connected = threading.Event()
        client.on_connect = lambda *_args: connected.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry
        if receive_maximum:
            props.ReceiveMaximum = receive_maximum
        client.connect("127.0.0.1", self.mosquitto.port, keepalive=60, clean_start=clean_start, properties=props)
        client.loop_start()
        if not connected.wait(10):
            raise TimeoutError(f"client {client_id} did not connect")
        return client

    def presubscribe(self, client_id: str, topic_filter: str) -> None:
        """Create the persistent session a consumer will resume, so the broker queues the backlog for it."""
        client = self.client(
            client_id,
            service_username(ROLE_INGEST),
            self.ingest_password,
            clean_start=True,
            session_expiry=SESSION_EXPIRY_S,
        )
        done = threading.Event()
        client.on_subscribe = lambda *_args: done.set()
        client.subscribe(topic_filter, qos=1)
        if not done.wait(10):
            raise TimeoutError(f"subscription of {client_id} not acknowledged")
        client.disconnect()
        client.loop_stop()

    def operator(self) -> Publisher:
        return Publisher(self)


class Publisher:
    """The bench's publisher (``PUBLISHER``, may publish on ``iots6/#``) publishing QoS 1 on the devices' telemetry
    topics: one connection can publish a 100k backlog in seconds, where 100 device connections would measure the
    publisher."""

    def __init__(self, stack: Stack):
        self.acked = 0
        self.sent = 0
        self.cond = threading.Condition()
        self.client = stack.client(
            f"bench-publisher-{uuid.uuid4().hex[:6]}",
            PUBLISHER,
            stack.publisher_password,
            max_inflight=1000,
        )
        self.client.on_publish = self._on_publish

    def _on_publish(self, _client, _userdata, _mid, reason_code, _props):
        with self.cond:
            self.acked += 1
            if reason_code.is_failure:
                raise RuntimeError(f"publish refused: {reason_code}")
            self.cond.notify_all()

    def publish(self, topic: str, payload: str | bytes, window: int = 1000) -> None:
        """Publish QoS 1 keeping at most ``window`` unacknowledged (paho rescans its whole out-queue on every
        PUBACK, so an unbounded queue of 100k messages publishes slower and slower)."""
        self.sent += 1
        if self.sent - self.acked > window:
            with self.cond:
                self.cond.wait_for(lambda: self.sent - self.acked <= window, 60)
        self.client.publish(topic, payload, qos=1)

    def wait_acked(self, count: int, timeout: float) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.acked >= count, timeout):
                raise TimeoutError(f"{count - self.acked} publishes not acknowledged by the broker")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def backlog(devices: list[str], n: int, start: datetime) -> list[tuple[str, str]]:
    """N telemetry readings spread over ``devices`` (10 s apart per device), as (topic, payload)."""
    from datetime import timedelta

    out = []
    for i in range(n):
        device_id = devices[i % len(devices)]
        seq = i // len(devices)
        reading = contract.Reading(
            start + timedelta(seconds=10 * seq),
            device_id,
            "telemetry",
            seq,
            20.0 + (i % 50) / 10,
            45.0,
            1013.0,
            None,
            None,
            -60,
            seq * 10,
            "1.2.0",
        )
        out.append((contract.topic(BASE, device_id, contract.TELEMETRY), contract.make_payload(reading)))
    return out


@dataclass
class Ingest:
    """The real ``python -m iots6_platform.ingest`` process, configured by env vars like in production."""

    stack: Stack
    dbname: str
    client_id: str
    share_group: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    http_port: int = 0
    proc: subprocess.Popen | None = None

    def start(self) -> Ingest:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "INGEST_MQTT_HOST": "127.0.0.1",
            "INGEST_MQTT_PORT": str(self.stack.mosquitto.port),
            "INGEST_MQTT_USERNAME": service_username(ROLE_INGEST),
            "INGEST_MQTT_PASSWORD_FILE": str(self.stack.ingest_password_file),
            "INGEST_DATABASE_URL": self.stack.url(self.dbname),
            "INGEST_DATABASE_PASSWORD_FILE": str(self.stack.db_password_file),
            "INGEST_CLIENT_ID": self.client_id,
            "INGEST_HTTP_PORT": str(self.http_port),
            "INGEST_LOG_LEVEL": "WARNING",
        }
        if self.share_group:
            env["INGEST_SHARE_GROUP"] = self.share_group
        env.update(self.extra_env)
        self.log_file = self.stack.directory / f"ingest-{self.client_id}.log"
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "iots6_platform.ingest"],
                env=env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc is not None and self.proc.returncode not in (0, None):
            tail = self.log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"ingest {self.client_id} exited with {self.proc.returncode}:\n{tail}")

    def healthy(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"ingest {self.client_id} died with {self.proc.returncode}:\n{tail}")
