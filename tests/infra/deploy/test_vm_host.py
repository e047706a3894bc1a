"""`iotctl deploy vm --host USER@ADDR` end to end, over real SSH, against a booted Debian 12.

The container is the Ansible tests' (tests/infra/ansible/conftest.py: debootstrap once, cached; systemd-nspawn -b
with systemd as PID 1; it shares this machine's network). Here it also runs Debian's OpenSSH server on a free
loopback port with a key made for the test, so the command takes exactly the path it takes for a real host:
`--host root@127.0.0.1:PORT --ssh-key KEY`, known_hosts per deployment, Ansible over SSH.

Then, with only the CLI: the deploy converges, checks a reading end to end and registers environment `vmtest`;
`iotctl device provision --env vmtest` makes a device; the device publishes over TLS with the credentials file it
got; `iotctl tail sensors --env vmtest --count 1` sees the reading; the reading is in the container's database
(read inside the container as PostgreSQL's superuser). A second deploy changes nothing. `deploy vm --status` reads
every service's state over SSH.

Off for the container (extra vars): the host firewall would load into this machine's network namespace, and
Grafana's and Timescale's apt repositories are unreachable from here. Ports are free ones, so nothing clashes.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iotctl.cli.main import app
from iotctl.stack.procs import free_ports
from iots6_platform.core import contract
from tests.infra.ansible.conftest import BootedDebian, cache_dir, ensure_rootfs, require_tools

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[3]
ENV = "vmtest"


def _sshd(vm: BootedDebian, key: Path, port: int) -> None:
    """OpenSSH in the container on 127.0.0.1:PORT, root by key only, configured before the package starts it."""
    vm.run(["mkdir", "-p", "/etc/ssh/sshd_config.d", "/root/.ssh"])
    conf = f"Port {port}\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
    (vm.root / "etc/ssh/sshd_config.d/10-iotctl-test.conf").write_text(conf)
    (vm.root / "root/.ssh/authorized_keys").write_text(Path(f"{key}.pub").read_text())
    os.chmod(vm.root / "root/.ssh", 0o700)
    os.chmod(vm.root / "root/.ssh/authorized_keys", 0o600)
    vm.run(["apt-get", "update", "-q"], timeout=300)
    env = ["env", "DEBIAN_FRONTEND=noninteractive"]
    vm.run([*env, "apt-get", "install", "-y", "-q", "--no-install-recommends", "openssh-server"], timeout=600)
    vm.run(["systemctl", "restart", "ssh.service"])
    deadline = time.monotonic() + 30
    probe = ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"]
    probe += ["-o", "UserKnownHostsFile=/dev/null", "root@127.0.0.1", "true"]
    while subprocess.run(probe, capture_output=True, timeout=30).returncode != 0:
        assert time.monotonic() < deadline, "sshd in the container did not accept the test key"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    require_tools()
    if not Path("/usr/bin/ssh").exists():
        pytest.fail("`ssh` (openssh-client) is missing on this machine")
    rootfs, _ = ensure_rootfs()
    archives = cache_dir() / "apt-archives-bookworm"
    archives.mkdir(parents=True, exist_ok=True)
    work = tmp_path_factory.mktemp("deploy-vm")
    vm = BootedDebian(rootfs, tmp_path_factory.mktemp("vm"), apt_archives=archives)
    timings: dict[str, float] = {}
    try:
        vm.boot()
        key = work / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        ssh_port, tls, local, pg, config, ingest, https = free_ports(7)
        t = time.monotonic()
        _sshd(vm, key, ssh_port)
        timings["sshd_s"] = time.monotonic() - t
        extra = {
            "iots6_firewall_active": False,
            "iots6_grafana_enabled": False,
            "iots6_postgresql_timescaledb_enabled": False,
            "iots6_mosquitto_tls_port": tls,
            "iots6_mosquitto_local_port": local,
            "iots6_postgresql_port": pg,
            "iots6_config_server_port": config,
            "iots6_ingest_http_port": ingest,
            "iots6_proxy_https_port": https,
        }
        extra_file = work / "extra.json"
        extra_file.write_text(json.dumps(extra))
        state = work / "state"
        env = {"IOTCTL_STATE_DIR": str(state), "NO_COLOR": "1"}
        args = ["deploy", "vm", "--env", ENV, "--host", f"root@127.0.0.1:{ssh_port}", "--ssh-key", str(key)]
        args += ["--ssh-from", "127.0.0.1/32", "--extra-vars", str(extra_file), "--json"]
        t = time.monotonic()
        first = CliRunner().invoke(app, args, env=env, catch_exceptions=False)
        timings["first_deploy_s"] = time.monotonic() - t
        assert first.exit_code == 0, first.output
        t = time.monotonic()
        second = CliRunner().invoke(app, [*args, "--skip-check"], env=env, catch_exceptions=False)
        timings["second_deploy_s"] = time.monotonic() - t
        assert second.exit_code == 0, second.output
        ARTIFACTS = REPO / "test-artifacts"
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "deploy-vm-host.json").write_text(json.dumps({k: round(v, 1) for k, v in timings.items()}) + "\n")
        print(f"\ndeploy vm --host timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
        yield {
            "vm": vm,
            "env": env,
            "first": json.loads(first.stdout),
            "second": json.loads(second.stdout),
            "second_output": second.output,
            "ports": {"tls": tls, "pg": pg, "https": https},
            "state": state,
        }
    finally:
        vm.stop()
        vm.remove()


def _cli(deployed, *args: str):
    result = CliRunner().invoke(app, list(args), env=deployed["env"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_deploy_converges_checks_and_registers_the_environment(deployed):
    first = deployed["first"]
    assert first["playbook"]["status"] == "successful" and first["playbook"]["changed"] > 0
    check = first["check"]
    assert check["ok"] and check["operator_saw_it"] and check["rows_in_database"] == 1, check
    ports = deployed["ports"]
    assert first["endpoints"]["mqtt"] == f"mqtts://127.0.0.1:{ports['tls']}"
    assert first["endpoints"]["config"] == f"https://127.0.0.1:{ports['https']}"
    shown = json.loads(_cli(deployed, "env", "show", ENV, "--json").stdout)
    assert shown["kind"] == "vm" and shown["broker"] == first["endpoints"]["mqtt"]
    assert all(s["present"] for s in shown["secrets"].values()), shown["secrets"]
    home = Path(first["credentials"]["operator_credentials"])
    for path in [*home.iterdir(), Path(shown["file"]), *Path(first["credentials"]["deployment_secrets"]).iterdir()]:
        if path.is_file() and not path.name.endswith(".crt"):  # certificates are public
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    # No secret value in the --json result.
    secrets_dir = Path(first["credentials"]["deployment_secrets"])
    for name in ("mqtt-admin-password", "mqtt-operator-password", "postgres-app-password", "config-admin-token"):
        assert (secrets_dir / name).read_text().strip() not in json.dumps(first)
    # The check's device is gone from the broker, and its registry row is retired.
    device = check["device_id"]
    row = (
        deployed["vm"]
        .run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "psql",
                "-p",
                str(ports["pg"]),
                "-d",
                "iots6",
                "-Atc",
                f"SELECT retired_at IS NOT NULL FROM devices WHERE device_id = '{device}'",
            ]
        )
        .stdout.strip()
    )
    assert row == "t"


def test_second_deploy_changes_nothing(deployed):
    second = deployed["second"]
    assert second["playbook"]["status"] == "successful"
    assert second["playbook"]["changed"] == 0, deployed["second_output"]
    assert second["check"] is None


def test_provision_publish_tail_and_store_through_the_environment(deployed):
    device = f"vmdev-{uuid.uuid4().hex[:8]}"
    made = json.loads(_cli(deployed, "device", "provision", device, "--env", ENV, "--json").stdout)
    creds = json.loads(Path(made["credentials_file"]).read_text())
    assert creds["mqtt_tls"] and creds["environment"] == ENV and creds["mqtt_port"] == deployed["ports"]["tls"]

    seen: list[str] = []
    tail = threading.Thread(
        target=lambda: seen.append(
            _cli(
                deployed,
                "tail",
                "sensors",
                "--env",
                ENV,
                "--device",
                device,
                "--count",
                "1",
                "--timeout",
                "45",
                "--json",
            ).stdout
        )
    )
    tail.start()
    time.sleep(2)  # tail's SUBACK
    from iotctl.endpoints import MqttEndpoint
    from iotctl.mqtt import connect

    endpoint = MqttEndpoint(
        creds["mqtt_host"],
        creds["mqtt_port"],
        device,
        creds["mqtt_password"],
        tls=True,
        ca_file=Path(creds["mqtt_ca_file"]),
    )
    client = connect(endpoint, device)
    reading = contract.Reading(
        datetime.now(UTC).replace(microsecond=0), device, "telemetry", 1, 22.5, 41.0, 1001.0, False, True, -55, 9, "1"
    )
    client.publish(contract.topic("iots6", device, contract.TELEMETRY), contract.make_payload(reading), qos=1)
    client.disconnect()
    client.loop_stop()
    tail.join(60)
    assert seen and json.loads(seen[0])["device_id"] == device, seen

    # In the container's own database, read there as its superuser.
    query = [
        "runuser",
        "-u",
        "postgres",
        "--",
        "psql",
        "-p",
        str(deployed["ports"]["pg"]),
        "-d",
        "iots6",
        "-Atc",
        f"SELECT count(*) FROM sensor_data WHERE device_id = '{device}'",
    ]
    deadline = time.monotonic() + 30
    while (count := deployed["vm"].run(query).stdout.strip()) != "1" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert count == "1"


def test_status_reads_every_service_over_ssh(deployed):
    status = json.loads(_cli(deployed, "deploy", "vm", "--env", ENV, "--status", "--json").stdout)
    assert status["services"] and set(status["services"].values()) == {"active"}, status["services"]
