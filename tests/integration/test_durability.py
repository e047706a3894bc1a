"""What survives what: one test per promise of README.md / docs/ingest.md (Durability).

* ingest crash, database crash: tests/integration/test_no_loss.py (SIGKILLed ingest, crashed PostgreSQL, one stream).
* broker restart (clean stop): nothing queued is lost.
* broker crash (SIGKILL) with the ingest stopped, and with it running: fewer than AUTOSAVE_INTERVAL acknowledged
  readings lost, plus those of the broker's interrupted event-loop pass (one packet per connection: one here).
* power loss: the broker fsyncs each save before it replaces the previous one; the stack's PostgreSQL commits
  durably. (Nothing here cuts the power: these are the mechanisms the promise rests on.)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iotctl.broker import dynsec
from iotctl.broker.accounts import ROLE_CONFIG, ROLE_INGEST, ROLE_OPERATOR, service_username
from iotctl.stack import procs
from iotctl.stack.mosquitto import AUTOSAVE_INTERVAL, AUTOSAVE_ON_CHANGES, MosquittoServer, require_mosquitto
from iots6_platform.core import contract
from iots6_platform.core.contract import Reading

from .conftest import wait_until

BASE = contract.DEFAULT_TOPIC_BASE
READINGS = 550  # not a multiple of AUTOSAVE_INTERVAL: the last save is behind the last PUBACK


def _payload(device_id: str, seq: int, start: datetime) -> str:
    reading = Reading(start + timedelta(seconds=seq), device_id, "telemetry", seq, 20.5, 50.0, None, None, None,
                      None, None, None)  # fmt: skip
    return contract.make_payload(reading)


def _stored(database, device_id: str) -> tuple[int, int]:
    with database.connect(autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*), count(DISTINCT seq) FROM sensor_data WHERE device_id = %s", (device_id,)
        ).fetchone()


def _settled(database, device_id: str, expected: int, quiet: float = 3.0, timeout: float = 60.0) -> tuple[int, int]:
    """Stored rows once all ``expected`` are in, or once nothing new arrived for ``quiet`` seconds."""
    last, since, deadline = None, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = _stored(database, device_id)
        if now[0] >= expected:
            return now
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > quiet:
            return now
        time.sleep(0.2)
    raise AssertionError(f"stored rows kept changing for {timeout}s: {last}")


def _kill_broker(broker) -> None:
    pid = broker.server.pid()
    os.kill(pid, signal.SIGKILL)  # no goodbye, no final save
    wait_until(lambda: not procs.pid_alive(pid), 10, 0.02, "broker gone")
    broker.server.pid_file.unlink(missing_ok=True)


def _queue_with_ingest_stopped(ingest_factory, provision, device_id: str):
    """The ingest's session exists (started once) but the ingest is stopped (a deploy): READINGS are PUBACKed."""
    worker = ingest_factory().start()
    assert worker.kill(signal.SIGTERM) == 0  # a clean stop keeps the persistent session queueing
    device = provision(device_id)
    topic = contract.topic(BASE, device_id, contract.TELEMETRY)
    start = datetime.now(UTC) - timedelta(hours=1)
    device.wait_acked([device.publish(topic, _payload(device_id, seq, start)) for seq in range(READINGS)])
    return worker


def test_broker_settings_save_on_changes():
    assert AUTOSAVE_ON_CHANGES and AUTOSAVE_INTERVAL == 100


def test_a_clean_broker_restart_loses_nothing_queued(ingest_factory, provision, broker, database, device_id):
    worker = _queue_with_ingest_stopped(ingest_factory, provision, device_id)
    broker.server.stop()  # SIGTERM: Mosquitto saves everything on its way out
    broker.server.start()
    worker.start()
    assert _settled(database, device_id, READINGS) == (READINGS, READINGS)


def test_a_broker_crash_with_the_ingest_stopped_loses_fewer_than_the_autosave_threshold(
    ingest_factory, provision, broker, database, device_id
):
    """Before: autosave every 60 s, 0 of 500 PUBACKed readings survived a SIGKILL."""
    worker = _queue_with_ingest_stopped(ingest_factory, provision, device_id)
    _kill_broker(broker)
    broker.server.start()
    worker.start()
    stored, distinct = _settled(database, device_id, READINGS)
    assert stored == distinct, "a reading stored twice"
    lost = READINGS - stored
    # Fewer than AUTOSAVE_INTERVAL changes since the last save, plus the interrupted pass: one packet from our one
    # publishing connection.
    assert 0 <= lost <= AUTOSAVE_INTERVAL, f"lost {lost} of {READINGS}"


def test_a_broker_crash_with_the_ingest_running_loses_fewer_than_the_autosave_threshold(
    ingest_factory, provision, broker, database, device_id
):
    worker = ingest_factory().start()
    device = provision(device_id, persistent=True)  # resends what was not PUBACKed, after the broker is back
    topic = contract.topic(BASE, device_id, contract.TELEMETRY)
    start = datetime.now(UTC) - timedelta(hours=1)
    mids: list[int] = []

    def publish():
        for seq in range(READINGS):
            mids.append(device.publish(topic, _payload(device_id, seq, start)))
            time.sleep(0.004)

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        wait_until(lambda: _stored(database, device_id)[0] > 100, 15, 0.02, "the stream flowing")
        _kill_broker(broker)
        time.sleep(0.5)
        broker.server.start()
    finally:
        thread.join(timeout=60)
    device.wait_acked(mids, timeout=60)
    wait_until(worker.healthy, 30, 0.2, "ingest reconnected")
    stored, distinct = _settled(database, device_id, READINGS)
    assert stored == distinct, "a reading stored twice"
    assert 0 <= READINGS - stored <= AUTOSAVE_INTERVAL, f"lost {READINGS - stored} of {READINGS}"


# ------------------------------------------------------------------------------------------------- power loss
def test_power_loss_each_broker_save_is_fsynced_before_it_replaces_the_last(tmp_path):
    """Mosquitto writes mosquitto.db.new, fsyncs it, renames it over mosquitto.db: after a power loss the file is
    one complete save, never a torn one. (It does not fsync the directory: docs/ingest.md says what that costs.)"""
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("`strace` not found; run `make install-system` (apt-get install strace).")
    server = MosquittoServer(tmp_path / "mqtt", procs.free_port())
    passwords = {role: uuid.uuid4().hex for role in (ROLE_INGEST, ROLE_OPERATOR, ROLE_CONFIG)}
    admin = uuid.uuid4().hex
    server.prepare_state(admin, passwords)
    server.write_config()
    trace = tmp_path / "strace.txt"
    tracer = procs.spawn(
        [strace, "-f", "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2", "-o", str(trace),
         require_mosquitto(), "-c", str(server.conf_file)],
        log=server.log_file,
    )  # fmt: skip
    try:
        procs.wait_for_port(server.bind, server.port, 15, "mosquitto", server.log_file, tracer.pid)
        _queue_for_an_offline_session(server, admin, passwords[ROLE_INGEST], AUTOSAVE_INTERVAL + 50)
    finally:
        # Stop the traced mosquitto (strace's child) cleanly, so its final save is traced too; strace follows.
        children = Path(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read_text().split()
        for pid in map(int, children):
            procs.stop_pid(pid, 10)
        tracer.wait(timeout=10)
    saves = _saves(trace.read_text())
    assert len(saves) >= 2, trace.read_text()[-3000:]  # one after 100 changes, one on the way out
    assert all(synced for synced in saves), saves


def _queue_for_an_offline_session(server: MosquittoServer, admin: str, ingest_password: str, count: int) -> None:
    """A persistent session subscribes and leaves; ``count`` readings are then queued for it by a publisher
    made for this test over the broker's control API (no product account may publish anywhere)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    publisher = ("test.publisher", uuid.uuid4().hex)
    with dynsec.DynsecAdmin(server.admin_endpoint(admin)) as session:
        session.ensure_role(publisher[0], [{"acltype": "publishClientSend", "topic": f"{BASE}/#", "allow": True}])
        session.create_client(publisher[0], publisher[1], [publisher[0]])

    def connect(username: str, password: str, client_id: str, expiry: int) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        client.username_pw_set(username, password)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = expiry
        connected = threading.Event()
        client.on_connect = lambda *_args: connected.set()
        client.connect("127.0.0.1", server.port, clean_start=expiry == 0, properties=props)
        client.loop_start()
        assert connected.wait(5), client_id
        return client

    subscriber = connect(service_username(ROLE_INGEST), ingest_password, "durable-ingest", 3600)
    subscribed = threading.Event()
    subscriber.on_subscribe = lambda *_args: subscribed.set()
    subscriber.subscribe(f"{BASE}/#", qos=1)
    assert subscribed.wait(5)
    subscriber.disconnect()
    subscriber.loop_stop()
    sender = connect(*publisher, "durable-publisher", 0)
    for info in [sender.publish(f"{BASE}/d/telemetry", "{}", qos=1) for _ in range(count)]:
        info.wait_for_publish(10)
    sender.disconnect()
    sender.loop_stop()


def _saves(text: str) -> list[bool]:
    """For each save (rename of mosquitto.db.new over mosquitto.db) in an strace log: was the file fsynced first?"""
    saves, open_fd, synced = [], None, False
    for line in text.splitlines():
        opened = re.search(r'openat\(.*"([^"]*mosquitto\.db\.new)", O_WRONLY.*= (\d+)$', line)
        if opened:
            open_fd, synced = opened.group(2), False
            continue
        if open_fd and re.search(rf"\bf(data)?sync\({open_fd}\)\s+= 0$", line):
            synced = True
        elif open_fd and re.search(r'rename(at2?)?\(.*mosquitto\.db\.new", .*mosquitto\.db"', line):
            saves.append(synced)
            open_fd, synced = None, False
    return saves


def test_power_loss_the_stacks_postgresql_commits_durably(tmp_path):
    """Readings the ingest has committed survive a power loss: fsync and synchronous_commit are on."""
    from iotctl.settings import load_settings
    from iotctl.stack.native import NativeStack

    stack = NativeStack(load_settings(environ={"IOTCTL_STATE_DIR": str(tmp_path), "IOTCTL_ENGINE": "system"}))
    settings = stack._postgres()._settings()
    assert (settings["fsync"], settings["synchronous_commit"], settings["full_page_writes"]) == ("on", "on", "on")
