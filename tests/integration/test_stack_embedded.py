"""`iotctl stack up --engine embedded`: the pip-installed amqtt broker and pgserver's PostgreSQL 16, for real.

The stack runs in a temp state dir on free ports; the fixture stops and wipes it in a finally.  MQTT clients
here speak 3.1.1 (amqtt has no v5).  Skipped only when the `embedded` extra is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from iotctl.broker.accounts import ROLE_OPERATOR, AccountStore
from iotctl.broker.pwhash import hash_password
from iotctl.cli.main import app
from iotctl.settings import load_settings
from iotctl.stack import procs
from iotctl.stack.embedded_broker import Registry, filter_covered
from iotctl.stack.native import NativeStack, embedded_missing
from iotctl.stack.postgres import pgserver_bindir
from iots6_platform.core import contract
from tests.missing import missing

MISSING = embedded_missing()


@pytest.fixture
def embedded_extra() -> None:
    """The `embedded` extra (pgserver, amqtt) is in the dev extra; without it, skip locally and fail in CI."""
    if MISSING:
        missing(f"the `embedded` extra is not installed ({', '.join(MISSING)}): pip install -e '.[embedded]'")


# ------------------------------------------------------------------------------------- pure rule checks


def test_subscription_cover():
    # a subscription is allowed only when every topic it can match is readable
    assert filter_covered("b/#", "b/#") and filter_covered("b/d1/#", "b/#")
    assert filter_covered("b/+/config", "b/#")
    assert filter_covered("b/d1/config", "b/+/config")
    assert not filter_covered("b/#", "b/+/config") and not filter_covered("b/+/config", "b/d1/config")
    assert not filter_covered("#", "b/#") and not filter_covered("b/d1/config/#", "b/d1/config")


def test_registry_enforces_the_mosquitto_acl(tmp_path):
    store = AccountStore(tmp_path, "b")
    device = store.add("d1", "device")
    operator = store.add("svc.operator", ROLE_OPERATOR)
    ingest = store.add("svc.ingest", "ingest")
    config = store.add("svc.config", "config")
    registry = Registry(store.registry_path, "b")
    assert registry.authenticate("d1", device) and registry.authenticate("svc.operator", operator)
    assert not registry.authenticate("d1", operator) and not registry.authenticate(None, None)
    assert not registry.authenticate("d1", None) and not registry.authenticate("ghost", device)
    allowed = registry.allowed
    # devices: write their own telemetry/event/status/legacy topics, read only their own config
    for topic in ("b/d1/telemetry", "b/d1/event", "b/d1/status", "b/d1"):
        assert allowed("d1", topic, "publish") and not allowed("d1", topic, "receive")
    assert not allowed("d1", "b/d2/telemetry", "publish") and not allowed("d1", "b/d1/config", "publish")
    assert allowed("d1", "b/d1/config", "subscribe") and allowed("d1", "b/d1/config", "receive")
    assert not allowed("d1", "b/d2/config", "subscribe") and not allowed("d1", "b/#", "subscribe")
    # services
    assert allowed("svc.ingest", "b/#", "subscribe")
    assert not allowed("svc.ingest", "b/d1/telemetry", "publish")
    assert allowed("svc.operator", "b/#", "subscribe") and allowed("svc.operator", "b/d1/telemetry", "receive")
    assert not allowed("svc.operator", "b/d1/config", "publish") and not allowed("svc.operator", "other/x", "publish")
    assert allowed("svc.config", "b/d1/config", "publish")
    assert not allowed("svc.config", "b/d1/telemetry", "publish")
    assert not allowed(None, "b/d1/telemetry", "publish")
    # a registry replaced on disk is noticed without a signal (the next CONNECT re-checks it)
    store.add("d2", "device", password="new-device-password")
    assert not registry.authenticate("d2", "new-device-password")
    registry.reload_if_changed()
    assert registry.authenticate("d2", "new-device-password")
    # an account with an unknown role gets nothing, and the rest still works
    accounts = json.loads(store.registry_path.read_text())
    accounts["odd"] = {"role": "wizard", "hash": hash_password("x"), "created": "now"}
    store.registry_path.write_text(json.dumps(accounts))
    registry.reload()
    assert not registry.authenticate("odd", "x") and registry.authenticate("d1", device)
    assert registry.authenticate("svc.ingest", ingest) and registry.authenticate("svc.config", config)


# ------------------------------------------------------------------------------------------ the stack


@pytest.fixture
def embedded_env(tmp_path):
    mqtt, pg, health, config = procs.free_ports(4)
    (tmp_path / "none.toml").write_text("")
    env = {
        "IOTCTL_CONFIG": str(tmp_path / "none.toml"),
        "IOTCTL_STATE_DIR": str(tmp_path / "state"),
        "IOTCTL_MQTT_PORT": str(mqtt),
        "IOTCTL_PG_PORT": str(pg),
        "IOTCTL_INGEST_HEALTH_PORT": str(health),
        "IOTCTL_CONFIG_PORT": str(config),
        "IOTCTL_ENGINE": "embedded",
        "NO_COLOR": "1",
    }
    stack = NativeStack(load_settings(environ=env))
    try:
        yield env, stack
    finally:
        stack.down(reset=True)
        survivors = [c.name for c in stack.status("embedded").components if c.pid]
        assert not survivors, f"{survivors} survived teardown"


def _cli(env: dict, *args: str):
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _proc(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from iotctl.cli.main import run; run()", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _client(port: int, username: str | None, password: str | None, on_message=None):
    """A connected 3.1.1 client (or the refusal reason as a string, client stopped)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:10]}", protocol=paho.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)
    if on_message:
        client.on_message = on_message
    done, result = threading.Event(), {}

    def on_connect(_c, _u, _f, reason_code, _p):
        result["rc"] = reason_code
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    assert done.wait(5), "the embedded broker did not answer CONNECT"
    if result["rc"].is_failure:
        client.loop_stop()
        client.disconnect()
    return client, str(result["rc"])


def _close(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _count(conn: psycopg.Connection, device: str) -> int:
    return conn.execute("SELECT count(*) FROM sensor_data WHERE device_id = %s", (device,)).fetchone()[0]


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.slow
def test_embedded_stack_end_to_end(embedded_extra, embedded_env):
    env, stack = embedded_env
    port = int(env["IOTCTL_MQTT_PORT"])

    first = json.loads(_cli(env, "stack", "up", "--json").stdout)
    assert first["engine"] == "embedded"
    states = {name: c["state"] for name, c in first["components"].items()}
    assert states["mosquitto"] == states["postgres"] == "running"
    assert "amqtt" in first["components"]["mosquitto"]["detail"]
    postgres_exe = Path(f"/proc/{first['components']['postgres']['pid']}/exe").resolve()
    assert postgres_exe.is_relative_to(pgserver_bindir().resolve()), postgres_exe  # pgserver's binary runs
    status = json.loads(_cli(env, "stack", "status", "--json").stdout)
    assert status["engine"] == "embedded"
    assert status["components"]["mosquitto"]["pid"] == first["components"]["mosquitto"]["pid"]
    assert "engine: embedded" in _cli(env, "stack", "status").stdout
    assert _proc(env, "stack", "status", "--check").returncode == 0

    # provisioning through the CLI reaches the running broker without a restart
    device, other = "emb-" + uuid.uuid4().hex[:8], "emb-" + uuid.uuid4().hex[:8]
    _cli(env, "device", "provision", device, other)
    creds = json.loads((stack.layout.device_file(device)).read_text())

    seen: list[str] = []
    operator_pw = stack.layout.secret("operator").read_text().strip()
    operator, rc = _client(port, "svc.operator", operator_pw, lambda _c, _u, m: seen.append(m.topic))
    assert rc == "Success", rc
    operator.subscribe(f"iots6/{other}/#", qos=1)
    operator.subscribe(f"iots6/{device}/#", qos=1)
    time.sleep(0.3)

    # refused: wrong password, unknown user, anonymous
    for username, password in ((device, "wrong-password"), ("nobody", creds["mqtt_password"]), (None, None)):
        _, rc = _client(port, username, password)
        assert rc == "Not authorized", (username, rc)

    dev, rc = _client(port, device, creds["mqtt_password"])
    assert rc == "Success", rc
    when = datetime.now(UTC).replace(microsecond=0)
    reading = contract.Reading(when, device, "telemetry", 1, 20.5, 40.0, 1000.0, False, True, -60, 5, "1.0")
    # another device's topic: dropped by the broker (3.1.1 has no negative PUBACK), nobody receives it
    dev.publish(
        contract.topic("iots6", other, contract.TELEMETRY), contract.make_payload(reading), qos=1
    ).wait_for_publish(5)
    dev.publish(
        contract.topic("iots6", device, contract.TELEMETRY), contract.make_payload(reading), qos=1
    ).wait_for_publish(5)
    _close(dev)
    own = contract.topic("iots6", device, contract.TELEMETRY)
    assert _wait(lambda: own in seen, 5), seen
    time.sleep(0.5)
    leaked = [t for t in seen if t.startswith(f"iots6/{other}/")]
    assert not leaked, f"a device wrote to another device's topic: {leaked}"
    _close(operator)

    # the stack's ingest (MQTT 3.1.1 persistent session) stored exactly the own reading
    password = stack.layout.secret("db").read_text().strip()
    dsn = f"host=127.0.0.1 port={env['IOTCTL_PG_PORT']} user=iots6 dbname=iots6"
    with psycopg.connect(dsn, password=password, autocommit=True) as conn:
        assert _wait(lambda: _count(conn, device) == 1, 20), "the ingest did not store the reading"
        assert _count(conn, other) == 0
        version = conn.execute("SHOW server_version").fetchone()[0]
    assert version.startswith("16"), version
    ingest_log = (stack.layout.logs_dir / "ingest.log").read_text()
    assert "v3.1.1" in ingest_log

    # tail speaks MQTT 3.1.1 to the embedded broker (the stack records its engine): a retained reading shows up
    dev, rc = _client(port, device, creds["mqtt_password"])
    dev.publish(own, contract.make_payload(reading._replace(seq=2)), qos=1, retain=True).wait_for_publish(5)
    _close(dev)
    tailed = _cli(env, "tail", "sensors", "--json", "--count", "1", "--timeout", "10")
    assert json.loads(tailed.stdout.splitlines()[0])["device_id"] == device
    with psycopg.connect(dsn, password=password, autocommit=True) as conn:
        assert _wait(lambda: _count(conn, device) == 2, 20), "the retained reading was not stored"

    # the config server's change notice reaches the device over 3.1.1 too (retained on its own config topic)
    _cli(env, "config", "set", device, "telemetry_interval_s=30")
    config_topic = contract.topic("iots6", device, contract.CONFIG)
    received: list[tuple[str, bytes]] = []
    dev, rc = _client(port, device, creds["mqtt_password"], lambda _c, _u, m: received.append((m.topic, m.payload)))
    dev.subscribe(config_topic, qos=1)

    # (Seen once in ~10 runs: amqtt delivered another retained message first; only the config topic counts here.)
    def notice_seen() -> bool:
        return any("version" in json.loads(p) for t, p in received if t == config_topic)

    assert _wait(notice_seen, 10), f"no config notice: {received}"
    _close(dev)

    # an explicit other engine is refused while this stack exists
    mismatch = _proc(env, "stack", "up", "--engine", "system")
    assert mismatch.returncode == 6 and "--engine embedded" in mismatch.stderr
    assert mismatch.stderr.strip().count("\n") == 0

    # down keeps the data; up again (auto keeps the recorded engine) finds it
    down = json.loads(_cli(env, "stack", "down", "--json").stdout)
    assert {"mosquitto", "postgres"} <= set(down["stopped"]) and down["wiped"] == []
    assert not any(c["pid"] for c in json.loads(_cli(env, "stack", "status", "--json").stdout)["components"].values())
    back = json.loads(_cli(env | {"IOTCTL_ENGINE": "auto"}, "stack", "up", "--json").stdout)
    assert back["engine"] == "embedded" and back["components"]["mosquitto"]["state"] == "running"
    with psycopg.connect(dsn, password=password, autocommit=True) as conn:
        assert _count(conn, device) == 2
    dev, rc = _client(port, device, creds["mqtt_password"])  # accounts survive a broker restart
    assert rc == "Success", rc
    _close(dev)

    # no secret in the broker's log, config file or command line
    secrets = [creds["mqtt_password"], operator_pw, password]
    broker_dir = stack.layout.mosquitto_dir
    texts = [
        (broker_dir / "embedded-broker.log").read_text(),
        (broker_dir / "embedded-broker.json").read_text(),
        Path(f"/proc/{back['components']['mosquitto']['pid']}/cmdline").read_text(),
    ]
    assert not [s for s in secrets for t in texts if s in t], "a secret leaked into the broker's files"

    reset = json.loads(_cli(env, "stack", "down", "--reset", "--yes", "--json").stdout)
    assert reset["wiped"] and not stack.layout.state_dir.exists()
