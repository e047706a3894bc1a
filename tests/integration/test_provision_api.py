"""`iotctl device provision | fleet | retire --env <vm>` through the config server's admin API over HTTPS, as on a
VM or AKS deployment: the operator's machine has no path to the database at all (the environment has no
``database.url`` and no database password).

Real parts: the config server app served over HTTPS (werkzeug, a certificate from ``iotctl.pki`` signed by the CA
the environment registers; on a VM nginx terminates TLS in front of it, on AKS the ingress), PostgreSQL, Mosquitto
with dynamic security over its TLS listener (iotctl makes the broker identity there as the `admin` client), and the
ingest, which stores a reading only from a device in the registry.
"""

from __future__ import annotations

import json
import os
import ssl
import stat
import threading
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner
from werkzeug.serving import make_server

from iotctl import environments, pki
from iotctl.broker import dynsec
from iotctl.cli.main import app as cli
from iotctl.endpoints import MqttEndpoint
from iotctl.errors import Unreachable
from iotctl.mqtt import connect
from iotctl.secretfiles import write_secret
from iotctl.stack.procs import free_port
from iots6_platform.config_server import close_app, create_app
from iots6_platform.core import contract

from .conftest import count_rows, wait_until

ADMIN_TOKEN = "admin-" + uuid.uuid4().hex


@pytest.fixture
def serve_https(tls_broker, tmp_path):
    """Start the config server app over HTTPS (a certificate of the broker's CA) on a database; returns its URL."""
    cert = pki.issue_server_cert(
        tls_broker.ca, tmp_path / "config-pki", "config", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
    )
    started = []

    def serve(database_url: str, password: str) -> str:
        flask_app = create_app(
            {"DATABASE_URL": database_url, "DATABASE_PASSWORD": password, "ADMIN_TOKEN": ADMIN_TOKEN}
        )
        server = make_server("127.0.0.1", 0, flask_app, threaded=True, ssl_context=(str(cert.cert), str(cert.key)))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread, flask_app))
        return f"https://localhost:{server.server_port}"

    yield serve
    for server, thread, flask_app in started:
        server.shutdown()
        thread.join(timeout=10)
        close_app(flask_app)


@pytest.fixture
def https_config_server(serve_https, database):
    """The config server on this test's database, over HTTPS."""
    return serve_https(database.url, database.password)


def _register(state: Path, name: str, tls_broker, config_url: str):
    return environments.register_environment(
        state,
        name,
        "vm",
        broker_host="127.0.0.1",
        broker_port=tls_broker.tls_port,
        broker_tls=True,
        config_url=config_url,
        secrets={
            environments.MQTT_ADMIN: tls_broker.admin[1],
            environments.MQTT_OPERATOR: tls_broker.operator[1],
            environments.CONFIG_ADMIN: ADMIN_TOKEN,
            environments.CA_CERT: tls_broker.ca.cert,
        },
    )


@pytest.fixture
def site(tmp_path, tls_broker, https_config_server):
    """The operator's state dir with environment `edge` (kind vm) registered as `deploy vm` registers one, minus
    the database: broker over TLS with the dynamic-security admin, config server over HTTPS, the CA."""
    state = tmp_path / "operator"
    (tmp_path / "none.toml").write_text("")
    env = _register(state, "edge", tls_broker, https_config_server)
    assert env.database.url is None and env.registry_via_api
    environ = {"IOTCTL_STATE_DIR": str(state), "IOTCTL_CONFIG": str(tmp_path / "none.toml"), "NO_COLOR": "1"}
    return env, environ


def run(environ, *args):
    return CliRunner().invoke(cli, list(args), env=environ, catch_exceptions=False)


def _fetch_config(url: str, device_id: str, token: str, ca: Path) -> int:
    request = urllib.request.Request(
        f"{url}/v1/devices/{device_id}/config", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=ssl.create_default_context(cafile=str(ca))) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _one_line(result) -> str:
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output, result.output
    return result.output


@pytest.fixture
def ingest_on_tls_broker(ingest_factory, tls_broker, tmp_path):
    """The real ingest, subscribed on the TLS broker's loopback listener as `svc.ingest` (as on the VM)."""
    password = write_secret(tmp_path / "ingest-tls.password", tls_broker.ingest[1])
    return ingest_factory(INGEST_MQTT_PORT=str(tls_broker.port), INGEST_MQTT_PASSWORD_FILE=str(password)).start()


def test_provision_publish_fleet_retire_through_the_config_server(
    site, tls_broker, https_config_server, database, ingest_on_tls_broker
):
    env, environ = site
    device = f"api-{uuid.uuid4().hex[:8]}"

    made = run(environ, "device", "provision", device, "--env", "edge", "--location", "roof", "--json")
    assert made.exit_code == 0, made.output
    public = json.loads(made.stdout)
    assert public["environment"] == "edge" and public["mqtt_tls"] and public["config_url"] == https_config_server
    path = Path(public["credentials_file"])
    assert path == env.home / "devices" / f"{device}.json" and stat.S_IMODE(path.stat().st_mode) == 0o600
    creds = json.loads(path.read_text())
    assert creds["mqtt_password"] not in made.output and creds["config_token"] not in made.output

    # The config server wrote the registry row (with the label) and the token the device fetches with.
    with database.connect() as conn:
        row = conn.execute("SELECT labels, retired_at FROM devices WHERE device_id = %s", (device,)).fetchone()
    assert row == ({"location": "roof"}, None)
    ca = Path(creds["mqtt_ca_file"])
    assert _fetch_config(https_config_server, device, creds["config_token"], ca) == 200

    # The device publishes over TLS with its own credentials and the ingest stores the reading.
    client = connect(
        MqttEndpoint("127.0.0.1", tls_broker.tls_port, device, creds["mqtt_password"], tls=True, ca_file=ca), device
    )
    payload = contract.make_payload(
        contract.Reading(
            datetime.now(UTC).replace(microsecond=0),
            device,
            "telemetry",
            1,
            21.0,
            40.0,
            1000.0,
            False,
            True,
            -60,
            5,
            "1.0",
        )
    )
    client.publish(contract.topic("iots6", device, contract.TELEMETRY), payload, qos=1).wait_for_publish(5)
    sql = "SELECT count(*) FROM sensor_data WHERE device_id = %s"
    wait_until(lambda: count_rows(database, sql, (device,)) == 1, 20, 0.2, "the reading in the database")

    # Again without --rotate: refused, nothing changed; with --rotate: new credentials, the old token is dead.
    again = run(environ, "device", "provision", device, "--env", "edge")
    assert again.exit_code == 6 and "--rotate" in _one_line(again)
    rotated = run(environ, "device", "provision", device, "--env", "edge", "--rotate")
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(path.read_text())
    assert _fetch_config(https_config_server, device, creds["config_token"], ca) == 401
    assert _fetch_config(https_config_server, device, new["config_token"], ca) == 200

    # The fleet, from the config server: labels, last seen, the broker account.
    listed = run(environ, "device", "fleet", "--env", "edge", "--json")
    assert listed.exit_code == 0, listed.output
    fleet = {r["device_id"]: r for r in json.loads(listed.stdout)}
    assert fleet[device]["labels"] == {"location": "roof"} and fleet[device]["last_seen"]
    assert fleet[device]["broker_account"] and fleet[device]["retired_at"] is None

    # Retire: the broker closes the device's connection (its old password was rotated away, so reconnect with the
    # new one first), the token is revoked, the row is kept retired.
    client.disconnect()
    client.loop_stop()
    client = connect(
        MqttEndpoint("127.0.0.1", tls_broker.tls_port, device, new["mqtt_password"], tls=True, ca_file=ca), device
    )
    disconnected = threading.Event()
    client.on_disconnect = lambda *_a: disconnected.set()
    retired = run(environ, "device", "retire", device, "--env", "edge")
    assert retired.exit_code == 0, retired.output
    assert disconnected.wait(5), "the retired device stayed connected"
    client.loop_stop()
    assert not path.exists()
    assert _fetch_config(https_config_server, device, new["config_token"], ca) == 401
    with database.connect() as conn:
        assert conn.execute("SELECT retired_at IS NOT NULL FROM devices WHERE device_id = %s", (device,)).fetchone()[0]
    gone = run(environ, "device", "retire", device, "--env", "edge")
    assert gone.exit_code == 7 and "not provisioned" in _one_line(gone)

    # Provisioning brings it back.
    back = run(environ, "device", "provision", device, "--env", "edge")
    assert back.exit_code == 0, back.output
    assert _fetch_config(https_config_server, device, json.loads(path.read_text())["config_token"], ca) == 200


def test_a_refused_admin_token_is_exit_5_and_nothing_is_made(site, tls_broker):
    env, environ = site
    write_secret(env.home / environments.CONFIG_ADMIN, "not-the-admin-token\n")
    device = f"api-{uuid.uuid4().hex[:8]}"
    refused = run(environ, "device", "provision", device, "--env", "edge")
    assert refused.exit_code == 5, refused.output
    line = _one_line(refused)
    assert "refused the admin token" in line and "`edge`" in line and "not-the-admin-token" not in line
    with dynsec.DynsecAdmin(tls_broker.endpoint(*tls_broker.admin)) as admin:
        assert device not in {c["username"] for c in admin.list_clients()}
    assert not (env.home / "devices" / f"{device}.json").exists()
    retire = run(environ, "device", "retire", device, "--env", "edge")
    assert retire.exit_code == 5 and "refused the admin token" in _one_line(retire)


def test_an_unreachable_config_server_is_exit_4_and_nothing_is_made(site, tls_broker, tmp_path):
    env, environ = site
    _register(Path(environ["IOTCTL_STATE_DIR"]), "edge-down", tls_broker, f"https://127.0.0.1:{free_port()}")
    device = f"api-{uuid.uuid4().hex[:8]}"
    down = run(environ, "device", "provision", device, "--env", "edge-down")
    assert down.exit_code == 4, down.output
    line = _one_line(down)
    assert "not reachable" in line and "`edge-down`" in line
    with dynsec.DynsecAdmin(tls_broker.endpoint(*tls_broker.admin)) as admin:
        assert device not in {c["username"] for c in admin.list_clients()}
    assert run(environ, "device", "fleet", "--env", "edge-down").exit_code == 4


def test_a_config_server_without_its_database_is_exit_4(site, tls_broker, serve_https, database):
    _env, environ = site
    url = serve_https(f"postgresql://iots6@127.0.0.1:{free_port()}/iots6", database.password)
    _register(Path(environ["IOTCTL_STATE_DIR"]), "edge-nodb", tls_broker, url)
    down = run(environ, "device", "provision", f"api-{uuid.uuid4().hex[:8]}", "--env", "edge-nodb")
    assert down.exit_code == 4, down.output
    line = _one_line(down)
    assert "HTTP 503" in line and "database is not reachable" in line and "`edge-nodb`" in line


def test_a_broker_failure_after_registration_retires_the_row_again(site, tls_broker, database, monkeypatch):
    """The API commits the registration before the broker step; when that step fails, iotctl retires the row it
    made, so no active device without a broker identity is left (the next provision brings it back)."""
    from iotctl.broker.identities import DynsecIdentities

    def refuse(_self, _device_id, _password):
        raise Unreachable("Broker went away (injected by the test).")

    monkeypatch.setattr(DynsecIdentities, "provision", refuse)
    env, environ = site
    device = f"api-{uuid.uuid4().hex[:8]}"
    failed = run(environ, "device", "provision", device, "--env", "edge")
    assert failed.exit_code == 4 and "injected" in _one_line(failed)
    with database.connect() as conn:
        row = conn.execute(
            "SELECT retired_at IS NOT NULL, (SELECT count(*) FROM device_tokens t WHERE t.device_id = d.device_id) "
            "FROM devices d WHERE device_id = %s",
            (device,),
        ).fetchone()
    assert row == (True, 0)
    assert not (env.home / "devices").exists() or not os.listdir(env.home / "devices")
