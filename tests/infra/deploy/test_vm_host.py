"""`iotctl deploy vm --host USER@ADDR` end to end, over real SSH, against a booted Debian 12.

The host is the session's ``converged_host`` (tests/infra/vmhost.py), shared with the converge tests: a booted
Debian running Debian's OpenSSH server on a free loopback port, with an admin user that becomes root with sudo
(like an Azure VM's), so the command takes exactly the path it takes for a real host:
`--host iots6admin@127.0.0.1:PORT --ssh-key KEY`, known_hosts per deployment, Ansible over SSH with sudo.
The playbook converged the fresh host once through iotctl.deploy (with the same deployment directory, inventory
and variables the command uses); the command is the second converge.

Then, with only the CLI: the deploy changes nothing, checks a reading end to end and registers environment
`vmtest`; `iotctl device provision --env vmtest` makes a device; the device publishes over TLS with the credentials
file it got; `iotctl tail sensors --env vmtest --count 1` sees the reading; the reading is in the container's
database (read inside the container as PostgreSQL's superuser). `deploy vm --status` reads every service's state
over SSH.

Off for the container (extra vars): the host firewall would load into this machine's network namespace, and
Grafana's and Timescale's apt repositories are unreachable from here. Ports are free ones, so nothing clashes.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iotctl.cli.main import app
from iots6_platform.core import contract
from tests.infra.vmhost import ENV

# The first test may pay for the session's converged host (boot, two converges: minutes, not seconds).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def deployed(converged_host):
    return converged_host


def _cli(deployed, *args: str):
    result = CliRunner().invoke(app, list(args), env=deployed.cli_env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_deploy_on_the_converged_host_changes_nothing(deployed):
    deploy = deployed.deploy
    assert deploy["playbook"]["status"] == "successful", deploy["playbook"]
    # The host was converged before (tests/infra/vmhost.py), so the command's converge is a re-run.
    assert deploy["playbook"]["changed"] == 0, deployed.deploy_output
    assert deploy["target"]["user"] == "iots6admin" and deploy["target"]["port"] == deployed.ssh_port


def test_deploy_checks_and_registers_the_environment(deployed):
    deploy = deployed.deploy
    check = deploy["check"]
    assert check["ok"] and check["operator_saw_it"] and check["rows_in_database"] == 1, check
    ports = deployed.ports
    assert deploy["endpoints"]["mqtt"] == f"mqtts://127.0.0.1:{ports['tls']}"
    assert deploy["endpoints"]["config"] == f"https://127.0.0.1:{ports['https']}"
    shown = json.loads(_cli(deployed, "env", "show", ENV, "--json").stdout)
    assert shown["kind"] == "vm" and shown["broker"] == deploy["endpoints"]["mqtt"]
    assert all(s["present"] for s in shown["secrets"].values()), shown["secrets"]
    home = Path(deploy["credentials"]["operator_credentials"])
    for path in [*home.iterdir(), Path(shown["file"]), *Path(deploy["credentials"]["deployment_secrets"]).iterdir()]:
        if path.is_file() and not path.name.endswith(".crt"):  # certificates are public
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    # No secret value in the --json result.
    secrets_dir = Path(deploy["credentials"]["deployment_secrets"])
    for name in ("mqtt-admin-password", "mqtt-operator-password", "postgres-app-password", "config-admin-token"):
        assert (secrets_dir / name).read_text().strip() not in json.dumps(deploy)
    # The check's device is gone from the broker, and its registry row is retired.
    device = check["device_id"]
    assert deployed.psql(f"SELECT retired_at IS NOT NULL FROM devices WHERE device_id = '{device}'") == "t"


def test_provision_publish_tail_and_store_through_the_environment(deployed):
    device = f"vmdev-{uuid.uuid4().hex[:8]}"
    made = json.loads(_cli(deployed, "device", "provision", device, "--env", ENV, "--json").stdout)
    creds = json.loads(Path(made["credentials_file"]).read_text())
    assert creds["mqtt_tls"] and creds["environment"] == ENV and creds["mqtt_port"] == deployed.ports["tls"]

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
    query = f"SELECT count(*) FROM sensor_data WHERE device_id = '{device}'"
    deadline = time.monotonic() + 30
    while (count := deployed.psql(query)) != "1" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert count == "1"


def test_status_reads_every_service_over_ssh(deployed):
    status = json.loads(_cli(deployed, "deploy", "vm", "--env", ENV, "--status", "--json").stdout)
    assert status["services"] and set(status["services"].values()) == {"active"}, status["services"]
