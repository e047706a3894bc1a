"""Upgrading a native stack from the password-file era to dynamic security keeps every device's password.

The old stack is made here exactly as the previous iotctl made it (``accounts.json`` with Mosquitto ``$7$``
hashes, ``passwd`` and ``acl`` rendered from it, a ``mosquitto.conf`` naming both) and run by the real Mosquitto,
which proves the old format works; then `stack up`'s broker step upgrades it in place while it runs.
"""

from __future__ import annotations

import json
import time
import uuid

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from iotctl.broker import dynsec
from iotctl.broker.pwhash import hash_password
from iotctl.cli.main import app
from iotctl.secretfiles import write_secret
from iotctl.settings import Settings
from iotctl.stack import procs
from iotctl.stack.layout import StackLayout
from iotctl.stack.mosquitto import require_mosquitto
from iotctl.stack.native import NativeStack
from iotctl.stack.procs import free_port
from iots6_platform.core import contract

from .test_provision import Wire

BASE = "iots6"
OLD_SECRETS = ("operator", "ingest", "config", "db", "admin-token")  # no mqtt-admin before dynamic security
OLD_RULES = {  # the old acl template's rules per role
    "device": lambda u: (
        [("write", f"{BASE}/{u}/{c}") for c in ("telemetry", "event", "status")]
        + [("write", f"{BASE}/{u}"), ("read", f"{BASE}/{u}/config")]
    ),
    "ingest": lambda u: [("read", f"{BASE}/#")],
    "operator": lambda u: [("readwrite", f"{BASE}/#")],
    "config": lambda u: [("readwrite", f"{BASE}/+/config")],
}


def make_old_stack(state, port: int, devices: list[str]) -> dict[str, str]:
    """The previous iotctl's broker directory, started; returns every password by account name."""
    layout = StackLayout(state)
    directory = layout.mosquitto_dir
    (directory / "data").mkdir(parents=True, mode=0o700)
    passwords = {}
    for name in OLD_SECRETS:
        passwords[name] = uuid.uuid4().hex
        write_secret(layout.secret(name), passwords[name] + "\n")
    accounts = {f"svc.{r}": {"role": r, "hash": hash_password(passwords[r])} for r in ("operator", "ingest", "config")}
    for device_id in devices:
        passwords[device_id] = uuid.uuid4().hex
        accounts[device_id] = {"role": "device", "hash": hash_password(passwords[device_id])}
    write_secret(directory / "accounts.json", json.dumps(accounts, indent=2, sort_keys=True) + "\n")
    write_secret(directory / "passwd", "".join(f"{u}:{a['hash']}\n" for u, a in sorted(accounts.items())))
    acl = ""
    for user, account in sorted(accounts.items()):
        acl += f"user {user}\n" + "".join(f"topic {a} {t}\n" for a, t in OLD_RULES[account["role"]](user)) + "\n"
    write_secret(directory / "acl", acl)
    (directory / "mosquitto.conf").write_text(
        f"user root\nper_listener_settings false\nallow_anonymous false\npassword_file {directory}/passwd\n"
        f"acl_file {directory}/acl\nlistener {port} 127.0.0.1\nprotocol mqtt\npersistence true\n"
        f"persistence_location {directory}/data/\nautosave_interval 60\nmax_queued_messages 1000\n"
        "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
    )
    proc = procs.spawn(
        [require_mosquitto(), "-c", str(directory / "mosquitto.conf")],
        log=directory / "mosquitto.log",
        pid_file=directory / "mosquitto.pid",
    )
    procs.wait_for_port("127.0.0.1", port, 10, "old mosquitto", directory / "mosquitto.log", proc.pid)
    return passwords


def persistent_session(port: int, password: str, on_message=None) -> paho.Client:
    """A persistent session of the ingest's account (the broker queues QoS 1 messages while it is away).

    MQTT 3.1.1 (clean_session=False): Mosquitto 2.0.11 does not restore an MQTT 5 session that was offline when
    the broker stopped (session expiry set in CONNECT); a 3.1.1 persistent session it does (checked by hand).
    """
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="iots6-ingest-migration", protocol=paho.MQTTv311, clean_session=False
    )
    client.username_pw_set("svc.ingest", password)
    if on_message:
        client.on_message = lambda _c, _u, m: on_message(m.payload)
    connected = []
    client.on_connect = lambda *_a: connected.append(True)
    client.connect("127.0.0.1", port)
    client.loop_start()
    deadline = time.monotonic() + 5
    while not connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert connected, "ingest session did not connect"
    return client


@pytest.fixture
def old_stack(tmp_path):
    state = tmp_path / "state"
    port = free_port()
    devices = [f"old-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    passwords = make_old_stack(state, port, devices)
    yield state, port, devices, passwords
    pid = procs.read_pid(StackLayout(state).mosquitto_dir / "mosquitto.pid")
    if pid:
        procs.stop_pid(pid)


def test_upgrade_keeps_old_device_passwords_and_queued_messages(old_stack, database, tmp_path):
    state, port, devices, passwords = old_stack
    layout = StackLayout(state)

    # Today's format works: the ingest's persistent session subscribes, devices log in and publish (queued).
    session = persistent_session(port, passwords["ingest"])
    session.subscribe(f"{BASE}/#", qos=1)
    time.sleep(0.5)
    session.disconnect()
    session.loop_stop()
    for device_id in devices:
        old = Wire(port, device_id, passwords[device_id], client_id=device_id)
        assert old.connack == "Success"
        assert old.publish(contract.topic(BASE, device_id, contract.TELEMETRY), f'{{"q": "{device_id}"}}') == "Success"
        old.close()

    # The upgrade: `stack up`'s broker step sees the running pre-dynamic-security broker.
    said: list[str] = []
    settings = Settings(state_dir=state, mqtt_port=port, engine="system")
    NativeStack(settings, progress=said.append).ensure_broker("system")
    assert any("restarting mosquitto" in m for m in said) and any("migrated" in m for m in said), said
    directory = layout.mosquitto_dir
    assert not (directory / "passwd").exists() and not (directory / "acl").exists()
    assert (directory / "accounts.json.pre-dynsec").exists() and (directory / "passwd.pre-dynsec").exists()
    assert "plugin_opt_config_file" in (directory / "mosquitto.conf").read_text()

    # Every device keeps its old password, now under dynamic security's rules.
    for device_id in devices:
        wire = Wire(port, device_id, passwords[device_id])
        assert wire.connack == "Success", device_id
        assert wire.publish(contract.topic(BASE, device_id, contract.STATUS), "online") in (
            "Success",
            "No matching subscribers",
        )
        assert wire.publish(contract.topic(BASE, "someone-else", contract.TELEMETRY)) == "Not authorized"
        assert wire.subscribe(f"{BASE}/#") == ["Not authorized"]  # the old ACL file granted this (and filtered)
        wire.close()
    # The services keep theirs too; the queued readings survived the restart.
    resumed: list[bytes] = []
    session = persistent_session(port, passwords["ingest"], on_message=resumed.append)
    deadline = time.monotonic() + 5
    while len(resumed) < 2 * len(devices) and time.monotonic() < deadline:
        time.sleep(0.05)
    session.disconnect()
    session.loop_stop()
    # the readings queued before the upgrade, and the status messages published after it
    assert sorted(resumed) == sorted([f'{{"q": "{d}"}}'.encode() for d in devices] + [b"online"] * len(devices))

    # The new admin secret was generated and provisioning works against the migrated broker.
    state_doc = dynsec.load_state(directory / "data" / dynsec.STATE_FILE)
    assert dynsec.password_matches(state_doc, "admin", layout.secret("mqtt-admin").read_text().strip())
    env = {
        "IOTCTL_STATE_DIR": str(state),
        "IOTCTL_MQTT_PORT": str(port),
        "IOTCTL_DATABASE_URL": database.url,
        "IOTCTL_DATABASE_PASSWORD_FILE": str(write_secret(tmp_path / "db.pw", database.password)),
        "IOTCTL_CONFIG": str(tmp_path / "none.toml"),
    }
    (tmp_path / "none.toml").write_text("")
    result = CliRunner().invoke(app, ["device", "provision", "new-after-upgrade"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # Running it again changes nothing and restarts nothing.
    pid = procs.read_pid(directory / "mosquitto.pid")
    said.clear()
    NativeStack(settings, progress=said.append).ensure_broker("system")
    assert procs.read_pid(directory / "mosquitto.pid") == pid and said == []
    procs.stop_pid(pid)
