"""`iotctl device provision | list | retire` against a real Mosquitto (in the stack layout) and PostgreSQL."""

from __future__ import annotations

import json
import os
import stat

import pytest
from typer.testing import CliRunner

from iotctl import contract
from iotctl.broker.accounts import ROLE_OPERATOR, service_username
from iotctl.cli.main import app
from iotctl.devconfig.tokens import VALID, verify_device_token
from iotctl.endpoints import MqttEndpoint
from iotctl.errors import AuthRefused
from iotctl.mqtt import connect
from iotctl.secretfiles import write_secret
from iotctl.stack.layout import StackLayout
from iotctl.stack.mosquitto import MosquittoServer
from iotctl.stack.procs import free_port

from .conftest import wait_until


@pytest.fixture
def site(tmp_path, database):
    """A state dir whose broker runs from the stack layout, and env vars pointing iotctl at it and the test DB."""
    state = tmp_path / "state"
    layout = StackLayout(state)
    broker = MosquittoServer(layout.mosquitto_dir, free_port())
    broker.accounts.add(service_username(ROLE_OPERATOR), ROLE_OPERATOR)
    broker.start()
    env = {
        "IOTCTL_STATE_DIR": str(state),
        "IOTCTL_MQTT_PORT": str(broker.port),
        "IOTCTL_DATABASE_URL": database.url,
        "IOTCTL_DATABASE_PASSWORD_FILE": str(write_secret(tmp_path / "db.pw", database.password)),
        "IOTCTL_CONFIG": str(tmp_path / "none.toml"),
    }
    (tmp_path / "none.toml").write_text("")
    yield broker, env, layout
    broker.stop()


def run(env, *args):
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result


def login(broker, username, password):
    deadline_client = None

    def attempt():
        nonlocal deadline_client
        try:
            deadline_client = connect(MqttEndpoint("127.0.0.1", broker.port, username, password), timeout=2)
            return True
        except AuthRefused:
            return False

    return attempt


def test_provision_writes_0600_credentials_that_work_only_for_own_topics(site, database):
    broker, env, layout = site
    result = run(env, "device", "provision", "bench-01", "--location", "lab", "--json")
    assert result.exit_code == 0, result.output
    public = json.loads(result.stdout)
    assert "mqtt_password" not in public and "config_token" not in public
    assert public["topics"]["telemetry"] == contract.topic("iots6", "bench-01", contract.TELEMETRY)
    path = layout.device_file("bench-01")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    creds = json.loads(path.read_text())
    assert creds["mqtt_password"] not in result.output and creds["config_token"] not in result.output
    with database.connect() as conn:
        labels = conn.execute("SELECT labels FROM devices WHERE device_id = 'bench-01'").fetchone()[0]
        assert labels == {"location": "lab"}
        assert verify_device_token(conn, "bench-01", creds["config_token"]) == VALID
    # The broker re-read its files: the device can log in and publish on its own topic only.
    ok = wait_until(login(broker, "bench-01", creds["mqtt_password"]), 5, what="device login")
    assert ok
    client = connect(MqttEndpoint("127.0.0.1", broker.port, "bench-01", creds["mqtt_password"]))
    own = client.publish(contract.topic("iots6", "bench-01", contract.TELEMETRY), "{}", qos=1)
    other = client.publish(contract.topic("iots6", "bench-02", contract.TELEMETRY), "{}", qos=1)
    own.wait_for_publish(5)
    other.wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_reprovision_needs_rotate_and_rotation_revokes_old_password(site):
    broker, env, layout = site
    assert run(env, "device", "provision", "bench-02").exit_code == 0
    old = json.loads(layout.device_file("bench-02").read_text())
    again = run(env, "device", "provision", "bench-02")
    assert again.exit_code == 6
    assert "already provisioned" in again.output and "--rotate" in again.output
    rotated = run(env, "device", "provision", "bench-02", "--rotate")
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(layout.device_file("bench-02").read_text())
    assert new["mqtt_password"] != old["mqtt_password"] and new["config_token"] != old["config_token"]
    wait_until(login(broker, "bench-02", new["mqtt_password"]), 5, what="new password works")
    with pytest.raises(AuthRefused):
        connect(MqttEndpoint("127.0.0.1", broker.port, "bench-02", old["mqtt_password"]), timeout=3)


def test_fleet_and_retire(site, database):
    broker, env, layout = site
    assert run(env, "device", "provision", "bench-03", "bench-04").exit_code == 0
    listed = run(env, "device", "fleet", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {r["device_id"]: r for r in json.loads(listed.stdout)}
    assert rows["bench-03"]["broker_account"] and rows["bench-04"]["broker_account"]
    password = json.loads(layout.device_file("bench-03").read_text())["mqtt_password"]
    retired = run(env, "device", "retire", "bench-03")
    assert retired.exit_code == 0, retired.output
    assert not layout.device_file("bench-03").exists()

    def refused():
        try:
            client = connect(MqttEndpoint("127.0.0.1", broker.port, "bench-03", password), timeout=2)
        except AuthRefused:
            return True
        client.disconnect()
        client.loop_stop()
        return False

    wait_until(refused, 5, what="retired device refused")
    with database.connect() as conn:
        assert conn.execute("SELECT retired_at IS NOT NULL FROM devices WHERE device_id = 'bench-03'").fetchone()[0]
    assert run(env, "device", "retire", "nope").exit_code == 7


@pytest.mark.parametrize("bad", ["has space", "dots.are.reserved", "x" * 65, ""])
def test_invalid_device_id_is_a_one_line_error(site, bad):
    _, env, _ = site
    result = run(env, "device", "provision", bad)
    assert result.exit_code == 6
    assert "invalid" in result.output and len(result.output.strip().splitlines()) == 1


def test_provision_with_database_down_is_one_line_exit_4(site):
    _, env, _ = site
    env = {**env, "IOTCTL_DATABASE_URL": f"postgresql://iots6@127.0.0.1:{free_port()}/iots6"}
    result = run(env, "device", "provision", "bench-05")
    assert result.exit_code == 4
    assert "not reachable" in result.output and len(result.output.strip().splitlines()) == 1


def test_fleet_shows_the_readings_each_device_dropped(site, database):
    """The ingest sums each device's `dropped` into devices.dropped_total (tests/integration/test_ingest.py);
    `device fleet` shows it, in the table and in --json."""
    _, env, _ = site
    assert run(env, "device", "provision", "bench-05", "bench-06").exit_code == 0
    with database.connect(autocommit=True) as conn:
        conn.execute("UPDATE devices SET dropped_total = 41, dropped_at = now() WHERE device_id = 'bench-05'")
    listed = run(env, "device", "fleet", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {r["device_id"]: r for r in json.loads(listed.stdout)}
    assert (rows["bench-05"]["dropped"], rows["bench-06"]["dropped"]) == (41, 0)
    assert rows["bench-05"]["dropped_at"] and rows["bench-06"]["dropped_at"] is None
    table = run({**env, "COLUMNS": "200"}, "device", "fleet")  # a wide table whatever the outer terminal
    assert table.exit_code == 0, table.output
    header = next(line for line in table.stdout.splitlines() if "device" in line)
    row = next(line for line in table.stdout.splitlines() if "bench-05" in line)
    cells = [c.strip() for c in row.split("│")]
    assert "dropped" in header and "41" in cells, table.stdout
