"""The playbook converges a booted Debian 12 for real, and the platform it leaves behind works end to end.

The host is the session's ``converged_host`` (tests/infra/vmhost.py), shared with test_vm_host.py: a booted
Debian with an Azure-like admin login over SSH (sudo), converged by ``iotctl.deploy.ansible.converge`` (probe,
bundle, site.yml) and then by ``iotctl deploy vm --host``, which must change nothing. Then, from this machine (the
container shares its network): the VM is registered as an iotctl environment, `iotctl device provision --env`
makes devices through the broker's dynamic security over TLS, a device publishes over TLS and its reading lands
in the container's database; anonymous and cross-device publishes land nothing; the config
server answers over HTTPS on the proxy with the device's token; services are active, hardened and own-user;
secrets are 0600 root files and appear nowhere else; a backup runs and restores; the firewall ruleset loads and
filters in a network namespace of its own (the container's would be this machine's: the role is told not to load
it there); rotated secrets are applied by a re-run. Grafana and TimescaleDB are off: their apt repositories cannot
be reached from here.

Timings (rootfs, boot, SSH, both converges) go to test-artifacts/vm-host.json.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from iotctl import environments
from iotctl.deploy.secrets import PASSWORDS
from iotctl.environments import register_environment
from iots6_platform.core import contract
from tests.infra.vmhost import ConvergedHost, changed_tasks

# The first test also pays for the session's converged host (boot, two converges: minutes, not seconds).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

BASE = "iots6"
SERVICES = [
    "mosquitto.service",
    "postgresql@15-main.service",
    "iots6-ingest.service",
    "iots6-config-server.service",
    "nginx.service",
    "iots6-backup.timer",
    "apt-daily-upgrade.timer",
]


class Converged:
    """The session's host, seen from this module: psycopg to its database as the application's owner."""

    def __init__(self, host: ConvergedHost):
        self.host = host
        self.vm = host.vm
        self.secrets = host.secrets
        self.ports = host.ports
        self.inventory = host.inventory
        self.extravars = host.extravars

    def secret(self, name: str) -> str:
        return self.host.secret(name)

    @property
    def ca(self) -> str:
        return self.host.ca

    def db(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.ports["pg"],
            user="iots6",
            dbname="iots6",
            password=self.secret("postgres-app-password"),
            autocommit=True,
        )

    def psql(self, sql: str, database: str = "iots6") -> str:
        """A query run inside the container as the postgres superuser (peer authentication on the socket)."""
        return self.host.psql(sql, database)


@pytest.fixture(scope="module")
def converged(converged_host) -> Converged:
    return Converged(converged_host)


# -- MQTT helpers (paho 2, TLS verified against the environment's CA) ---------------------------------------------


def _client(c: Converged, username: str | None, password: str | None, client_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=c.ca)
    if username is not None:
        client.username_pw_set(username, password)
    return client


def _connect(c: Converged, username: str | None, password: str | None, client_id: str | None = None):
    """A started client and its CONNACK reason code (0 = accepted)."""
    client = _client(c, username, password, client_id or f"t-{uuid.uuid4().hex[:10]}")
    done = threading.Event()
    result: dict[str, int] = {}

    def on_connect(_c, _u, _flags, reason, _props):
        result["rc"] = reason.value
        done.set()

    client.on_connect = on_connect
    client.connect("localhost", c.ports["tls"])
    client.loop_start()
    assert done.wait(15), "no CONNACK from the broker over TLS"
    return client, result["rc"]


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _register_environment(c: Converged, state_dir: Path) -> str:
    """The test VM as an iotctl environment of kind `vm` (what `iotctl deploy vm` registers), without its database:
    provisioning must need nothing but the broker's TLS port and the config server behind nginx."""
    name = "test-vm"
    register_environment(
        state_dir,
        name,
        "vm",
        broker_host="localhost",
        broker_port=c.ports["tls"],
        broker_tls=True,
        config_url=f"https://localhost:{c.ports['https']}",
        secrets={
            environments.MQTT_ADMIN: c.secrets / "mqtt-admin-password",
            environments.MQTT_OPERATOR: c.secrets / "mqtt-operator-password",
            environments.CONFIG_ADMIN: c.secrets / "config-admin-token",
            environments.CA_CERT: c.secrets / "tls-ca-crt",
        },
    )
    return name


def _provision(c: Converged, state_dir: Path, env_name: str, device_id: str) -> tuple[str, str]:
    """`iotctl device provision ID --env <the test VM>`: broker client and role over TLS through dynamic
    security, registry row and config token through the VM's config server (nginx, HTTPS); returns (MQTT
    password, config token)."""
    from typer.testing import CliRunner

    from iotctl.cli.main import app

    environ = {"IOTCTL_STATE_DIR": str(state_dir), "IOTCTL_CONFIG": str(state_dir / "none.toml")}
    result = CliRunner().invoke(
        app, ["device", "provision", device_id, "--env", env_name, "--json"], env=environ, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    public = json.loads(result.stdout)
    assert public["environment"] == env_name and public["mqtt_tls"] is True
    creds = json.loads(Path(public["credentials_file"]).read_text())
    assert creds["mqtt_port"] == c.ports["tls"]
    return creds["mqtt_password"], creds["config_token"]


def _reading(device_id: str, seq: int) -> str:
    reading = contract.Reading(
        datetime.now(UTC), device_id, "telemetry", seq, 21.5, 40.0, 1013.2, False, True, -60, 120, "1.0.0"
    )
    return contract.make_payload(reading)


def _publish(client: mqtt.Client, topic: str, payload: str) -> None:
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(timeout=15)
    assert info.is_published()


def _rows(c: Converged, device_id: str) -> int:
    with c.db() as conn:
        return conn.execute("SELECT count(*) FROM sensor_data WHERE device_id = %s", (device_id,)).fetchone()[0]


def _wait_rows(c: Converged, device_id: str, n: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while (count := _rows(c, device_id)) < n and time.monotonic() < deadline:
        time.sleep(0.3)
    return count


@pytest.fixture(scope="module")
def devices(converged, tmp_path_factory) -> dict[str, tuple[str, str]]:
    state_dir = tmp_path_factory.mktemp("iotctl-state")
    (state_dir / "none.toml").write_text("")
    env_name = _register_environment(converged, state_dir)
    ids = [f"vm-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    return {device_id: _provision(converged, state_dir, env_name, device_id) for device_id in ids}


# -- tests ---------------------------------------------------------------------------------------------------------


def test_first_run_converges_and_second_run_changes_nothing(converged):
    first, deploy = converged.host.first, converged.host.deploy
    assert first.succeeded and first.changed > 0, first.as_dict()
    # The second run is `iotctl deploy vm --host` on the converged host.
    assert deploy["playbook"]["status"] == "successful", deploy["playbook"]
    changed = converged.host.deploy_changed_tasks
    assert deploy["playbook"]["changed"] == 0, f"tasks that changed on the second run: {changed}"
    assert deploy["playbook"]["hosts"]["vm"]["failed"] == 0


def test_runs_print_no_warning_or_deprecation(converged):
    output = converged.host.ansible_output()
    assert output.count("PLAY RECAP") >= 2, "Ansible's output of both converges was not captured"
    warnings = sorted({line for line in output.splitlines() if "WARNING" in line})
    assert not warnings, warnings


def test_every_service_is_active_and_enabled(converged):
    active = converged.vm.run(["systemctl", "is-active", *SERVICES], check=False).stdout.split()
    assert active == ["active"] * len(SERVICES), dict(zip(SERVICES, active, strict=False))
    enabled = converged.vm.run(["systemctl", "is-enabled", *SERVICES], check=False).stdout.split()
    assert enabled == ["enabled"] * len(SERVICES), dict(zip(SERVICES, enabled, strict=False))


@pytest.mark.parametrize(
    ("unit", "user"),
    [("iots6-ingest.service", "iots6-ingest"), ("iots6-config-server.service", "iots6-config-server")],
)
def test_services_are_hardened_and_run_as_their_own_users(converged, unit, user):
    props = dict(
        line.split("=", 1)
        for line in converged.vm.run(
            ["systemctl", "show", unit, "-p", "User,ProtectSystem,NoNewPrivileges,Restart,MainPID,StandardOutput"]
        ).stdout.splitlines()
    )
    assert props["User"] == user
    assert props["ProtectSystem"] == "strict"
    assert props["NoNewPrivileges"] == "yes"
    assert props["Restart"] == "on-failure"
    assert props["StandardOutput"] == "journal"
    uid = converged.vm.run(["id", "-u", user]).stdout.strip()
    status = converged.vm.run(["cat", f"/proc/{props['MainPID']}/status"]).stdout
    assert f"Uid:\t{uid}\t{uid}" in status
    # Inside the running service's own mount namespace the file system is read-only, even for root.
    probe = converged.vm.run(
        ["nsenter", f"--target={props['MainPID']}", "--mount", "--", "touch", "/opt/iots6/probe"], check=False
    )
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr, probe.stderr
    journal = converged.vm.run(["journalctl", "-u", unit, "--no-pager", "-o", "cat"]).stdout
    assert journal.strip(), f"{unit} logged nothing to journald"


def test_secrets_are_root_only_files_and_appear_nowhere_else(converged):
    listing = converged.vm.run(["stat", "-c", "%a %U %G %n", "/etc/iots6/credentials"]).stdout
    assert listing.startswith("700 root root")
    files = converged.vm.run(
        ["sh", "-c", "stat -c '%a %U %G %n' /etc/iots6/credentials/* /etc/mosquitto/certs/broker.key"]
    ).stdout
    modes = dict(line.rsplit(" ", 1)[::-1] for line in files.splitlines())
    for name, mode in modes.items():
        expected = "640 root mosquitto" if name.endswith("broker.key") else "600 root root"
        assert mode == expected, (name, mode)
    values = {name: converged.secret(name) for name in PASSWORDS if name != "grafana-admin-password"}
    values.pop("postgres-grafana-password")
    # Not in the env files, the units, a process's command line or environment, nor in Ansible's event log.
    places = converged.vm.run(
        [
            "sh",
            "-c",
            "cat /etc/iots6/*.env /etc/systemd/system/iots6-*.service /proc/[0-9]*/cmdline /proc/[0-9]*/environ",
        ],
        check=False,
    ).stdout
    logged = "".join(p.read_text(errors="replace") for p in converged.host.artifacts.rglob("*") if p.is_file())
    assert "PLAY RECAP" in logged, "no Ansible artifacts were written"
    for name, value in values.items():
        assert value not in places, f"{name} leaked into a file, a command line or an environment"
        assert value not in logged, f"{name} leaked into Ansible's output"


def test_only_tls_ports_listen_beyond_loopback(converged):
    listening = converged.vm.run(["cat", "/proc/net/tcp"]).stdout.splitlines()[1:]
    listening = [line.split() for line in listening if line.split()[3] == "0A"]  # 0A = LISTEN
    by_port = {}
    for fields in listening:
        address, port = fields[1].split(":")
        by_port.setdefault(int(port, 16), set()).add(address)
    ports = converged.ports
    for name in ("local", "pg", "config", "ingest"):
        assert by_port.get(ports[name]) == {"0100007F"}, (name, by_port.get(ports[name]))  # 127.0.0.1 only
    assert by_port.get(ports["tls"]) == {"00000000"}  # 0.0.0.0
    assert by_port.get(ports["https"]) == {"00000000"}


def test_device_reading_over_tls_lands_in_the_database(converged, devices):
    device_id, (password, _token) = next(iter(devices.items()))
    client, rc = _connect(converged, device_id, password, client_id=device_id)
    assert rc == 0, f"device login refused ({rc})"
    _publish(client, contract.topic(BASE, device_id, contract.TELEMETRY), _reading(device_id, 1))
    _close(client)
    assert _wait_rows(converged, device_id, 1) == 1
    # The row is in the container's database itself (read there as its superuser), not in some other server.
    assert converged.psql(f"SELECT count(*) FROM sensor_data WHERE device_id = '{device_id}'") == "1"


def test_anonymous_and_cross_device_publishes_land_nothing(converged, devices):
    (first, (password, _)), (second, _) = list(devices.items())
    client, rc = _connect(converged, None, None)
    _close(client)
    assert rc != 0, "the broker accepted an anonymous client"
    client, rc = _connect(converged, first, "wrong-" + password, client_id=first)
    _close(client)
    assert rc != 0, "the broker accepted a wrong password"
    before = _rows(converged, first)
    client, rc = _connect(converged, first, password, client_id=first)
    assert rc == 0
    _publish(client, contract.topic(BASE, second, contract.TELEMETRY), _reading(second, 7))
    # The same client's next, allowed message is a barrier: once it is stored, the one before it would be too.
    _publish(client, contract.topic(BASE, first, contract.TELEMETRY), _reading(first, 100))
    _close(client)
    assert _wait_rows(converged, first, before + 1) == before + 1
    assert _rows(converged, second) == 0
    with converged.db() as conn:
        dead = conn.execute("SELECT count(*) FROM dead_letter WHERE device_id = %s", (second,)).fetchone()[0]
    assert dead == 0


def test_config_server_answers_over_https_with_the_device_token(converged, devices):
    (first, (_, token)), (_second, (_, other_token)) = list(devices.items())
    context = ssl.create_default_context(cafile=converged.ca)
    url = f"https://localhost:{converged.ports['https']}/v1/devices/{first}/config"

    def get(path_url: str, bearer: str | None) -> tuple[int, bytes]:
        request = urllib.request.Request(path_url)
        if bearer:
            request.add_header("Authorization", f"Bearer {bearer}")
        try:
            with urllib.request.urlopen(request, context=context, timeout=15) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    status, body = get(url, token)
    assert status == 200, body
    assert json.loads(body)["device_id"] == first
    assert get(url, None)[0] == 401
    assert get(url, other_token)[0] == 403
    # Metrics stay private: the proxy publishes the config API only.
    assert get(f"https://localhost:{converged.ports['https']}/metrics", None)[0] == 404


def test_broker_restart_keeps_identities_on_the_data_disk(converged, devices):
    device_id, (password, _) = next(iter(devices.items()))
    state = converged.vm.run(["stat", "-c", "%a %U", "/srv/iots6/mosquitto/dynamic-security.json"]).stdout.strip()
    assert state == "600 mosquitto"
    converged.vm.run(["systemctl", "restart", "mosquitto.service"])
    deadline = time.monotonic() + 20
    while True:
        try:
            client, rc = _connect(converged, device_id, password, client_id=device_id)
            break
        except (OSError, AssertionError):
            assert time.monotonic() < deadline, "the broker did not come back"
            time.sleep(0.5)
    _close(client)
    assert rc == 0


def test_backup_runs_on_its_timer_unit_and_restores(converged, devices):
    vm = converged.vm
    vm.run(["systemctl", "start", "iots6-backup.service"])
    dumps = vm.run(["sh", "-c", "ls /srv/iots6/backups/iots6-*.dump"]).stdout.split()
    assert dumps, "the backup service wrote no dump"
    mode = vm.run(["stat", "-c", "%a %U", "/srv/iots6/backups"]).stdout.strip()
    assert mode == "700 postgres"
    # The documented restore (docs/deploy-vm.md), into a scratch database so the live one keeps running.
    port = str(converged.ports["pg"])
    as_postgres = ["runuser", "-u", "postgres", "--"]
    vm.run([*as_postgres, "createdb", "-p", port, "-O", "iots6", "iots6_restore_check"])
    try:
        vm.run(
            [
                *as_postgres,
                "pg_restore",
                "-p",
                port,
                "--no-owner",
                "--role=iots6",
                "-d",
                "iots6_restore_check",
                dumps[-1],
            ]
        )
        restored = converged.psql("SELECT count(*) FROM devices", database="iots6_restore_check")
        live = converged.psql("SELECT count(*) FROM devices")
        assert int(restored) == int(live) >= len(devices)
    finally:
        vm.run([*as_postgres, "dropdb", "-p", port, "iots6_restore_check"], check=False)


def test_firewall_ruleset_loads_and_filters_in_its_own_network_namespace(converged):
    # The ruleset the role wrote, loaded by the container's nft into a fresh network namespace (never this
    # machine's), after a foreign table that must survive it.
    script = "nft add table inet foreign && nft -f /etc/nftables.conf && nft -f /etc/nftables.conf && nft list ruleset"
    out = converged.vm.run(["unshare", "--net", "sh", "-c", script]).stdout
    assert "table inet foreign" in out
    assert out.count("table inet iots6") == 1
    assert "policy drop" in out
    for port in (converged.ports["tls"], converged.ports["https"]):
        assert f"ip saddr 0.0.0.0/0 tcp dport {port} accept" in out
        assert f"ip6 saddr ::/0 tcp dport {port} accept" in out
    assert "ip saddr 127.0.0.1 tcp dport 22 accept" in out
    assert out.count(" accept") == 4 + 5  # ct state, lo, icmp, icmpv6 + the five rules above; nothing else


def test_rotated_secrets_are_applied_by_a_rerun(converged, devices):
    """Rotation is: replace the secret file, re-run. The broker, the database and the services follow."""
    old_mqtt, old_db = converged.secret("mqtt-ingest-password"), converged.secret("postgres-app-password")
    for name in ("mqtt-ingest-password", "postgres-app-password"):
        path = converged.secrets / name
        path.write_text(uuid.uuid4().hex + "\n")
    # The documented rotation (docs/deploy-vm.md): the same `iotctl deploy vm`, which also re-registers the
    # environment with the new credentials (test_vm_host.py goes on using it).
    t = time.monotonic()
    result = converged.host.redeploy("rotation", "--skip-check", "--json")
    changed = changed_tasks(result.output)
    print(f"\nrotation run: {time.monotonic() - t:.1f} s, changed: {changed}")
    assert json.loads(result.stdout)["playbook"]["status"] == "successful"
    assert "Create the service clients with their passwords and roles" in changed
    assert "Create the application's owner role" in changed
    assert {"Restart the ingest", "Restart the config server"} <= set(changed)
    client, rc = _connect(converged, "svc.ingest", converged.secret("mqtt-ingest-password"))
    _close(client)
    assert rc == 0, "the new svc.ingest password is refused"
    client, rc = _connect(converged, "svc.ingest", old_mqtt)
    _close(client)
    assert rc != 0, "the old svc.ingest password still works"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=converged.ports["pg"], user="iots6", dbname="iots6", password=old_db)
    # The restarted ingest runs on the new credentials: a new reading still lands.
    device_id, (password, _) = next(iter(devices.items()))
    before = _rows(converged, device_id)
    client, rc = _connect(converged, device_id, password, client_id=device_id)
    assert rc == 0
    _publish(client, contract.topic(BASE, device_id, contract.TELEMETRY), _reading(device_id, 500))
    _close(client)
    assert _wait_rows(converged, device_id, before + 1) == before + 1
