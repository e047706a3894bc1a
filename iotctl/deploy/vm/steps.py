"""The steps of ``deploy vm``: Terraform (the Azure VM), Ansible (the platform on the host), the end-to-end check
(a reading over TLS lands in the database) and the environment's registration."""

from __future__ import annotations

import ipaddress
import re
import shlex
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iotctl.deploy.vm.target import (
    AZURE_DATA_DEVICE,
    CHECK_DEVICE_PREFIX,
    DEFAULT_PORTS,
    KIND,
    ROOT,
    AzureOptions,
    Deployment,
    HostTarget,
    check_cidr,
)
from iotctl.errors import InvalidInput, NotFound, OperationFailed
from iotctl.packaged import PACKAGE_DIR

# ------------------------------------------------------------------------------------------------ Terraform


def terraform_source() -> Path:
    path = PACKAGE_DIR.parent / "infra" / "terraform"
    if not (path / ROOT).is_dir():
        raise NotFound(
            f"The Terraform root `{path / ROOT}` was not found; run iotctl from a clone of the repository "
            "(pip install -e .) to deploy."
        )
    return path


def public_key(ssh_key: Path | None) -> tuple[Path, str]:
    """The operator's SSH key pair: (private key, public key line)."""
    defaults = [Path.home() / ".ssh" / n for n in ("id_ed25519", "id_ecdsa", "id_rsa")]
    candidates = [Path(ssh_key)] if ssh_key else defaults
    for key in candidates:
        pub = Path(f"{key}.pub")
        if key.is_file() and pub.is_file():
            line = pub.read_text().strip()
            if not re.match(r"^(ssh-ed25519|ecdsa-sha2-nistp\d+|ssh-rsa) [A-Za-z0-9+/=]+", line):
                raise InvalidInput(f"`{pub}` is not an OpenSSH public key line; pass --ssh-key with a key pair.")
            return key, line
    where = f"`{ssh_key}` (and `{ssh_key}.pub`)" if ssh_key else "~/.ssh/id_ed25519 (or id_ecdsa, id_rsa)"
    raise NotFound(f"No SSH key pair at {where}; create one with `ssh-keygen -t ed25519` or pass --ssh-key PATH.")


def terraform_variables(name: str, azure: AzureOptions, ssh_cidr: str, public_key_line: str) -> dict[str, Any]:
    variables: dict[str, Any] = {
        "environment": name,
        "location": azure.location,
        "admin_ssh_public_key": public_key_line,
        "mqtt_tls_source_cidrs": [check_cidr(c, "--mqtt-from") for c in azure.mqtt_sources],
        "https_source_cidrs": [check_cidr(c, "--https-from") for c in azure.https_sources],
        "ssh_source_cidrs": [ssh_cidr],
    }
    if azure.vm_size:
        variables["vm_size"] = azure.vm_size
    if azure.subscription_id:
        variables["subscription_id"] = azure.subscription_id
    if azure.admin_username:
        variables["admin_username"] = azure.admin_username
    return variables


def terraform_root(deployment: Deployment, variables: Mapping[str, Any] | None = None, *, source: Path | None = None):
    from iotctl.deploy.terraform import TerraformRoot

    return TerraformRoot(
        source=source or terraform_source(),
        root=ROOT,
        work_dir=deployment.terraform_dir,
        variables=dict(variables or {}),
    )


def target_from_outputs(outputs: Mapping[str, Any], key_file: Path | None) -> HostTarget:
    missing = [k for k in ("fqdn", "admin_username") if not outputs.get(k)]
    if missing:
        raise OperationFailed(
            f"Terraform's outputs lack `{missing[0]}`; run `iotctl deploy vm` again (the apply may have failed)."
        )
    lun = outputs.get("data_disk_lun")
    allowed = outputs.get("allowed_inbound") or None
    return HostTarget(
        address=outputs["fqdn"],
        user=outputs["admin_username"],
        key_file=key_file,
        server_name=outputs["fqdn"],
        data_device=AZURE_DATA_DEVICE.format(lun=lun) if lun is not None else "",
        allowed_inbound={str(k): list(v) for k, v in allowed.items()} if allowed else None,
    )


# ------------------------------------------------------------------------------------------------ Ansible


def playbook_variables(target: HostTarget, operator_cidr: str | None, extravars: Mapping[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = {"iots6_server_name": target.server_name or target.address}
    if operator_cidr:
        variables["iots6_operator_sources"] = [operator_cidr]
    if target.data_device:
        variables["iots6_base_data_device"] = target.data_device
    if target.allowed_inbound:
        variables["iots6_firewall_allowed_inbound"] = {k: list(v) for k, v in target.allowed_inbound.items()}
    variables.update(extravars)
    return variables


def ports(variables: Mapping[str, Any]) -> dict[str, int]:
    found = {}
    for key, default in DEFAULT_PORTS.items():
        try:
            found[key] = int(variables.get(key, default))
        except (TypeError, ValueError):
            raise InvalidInput(f"Extra variable `{key}` must be a port number, got `{variables.get(key)}`.") from None
    return found


def ensure_secrets(deployment: Deployment, target: HostTarget) -> dict[str, Path]:
    from iotctl.deploy import secrets

    name = target.server_name or target.address
    try:
        ipaddress.ip_address(name)
        dns, ips = (["localhost"] if target.loopback else []), [name]
    except ValueError:
        dns, ips = [name], []
    return secrets.ensure_secrets(deployment.secrets_dir, dns_names=dns, ip_addresses=ips)


def configure(
    deployment: Deployment,
    target: HostTarget,
    variables: Mapping[str, Any],
    *,
    on_event: Callable[[Any], None] | None = None,
    timeout: int | None = 3600,
):
    """Converge the host with the playbook; returns ansible's :class:`PlaybookResult`."""
    from iotctl.deploy import ansible as deploy_ansible

    ensure_secrets(deployment, target)
    return deploy_ansible.converge(
        target.inventory(deployment.known_hosts),
        secrets_dir=deployment.secrets_dir,
        bundle_dir=deployment.bundles_dir,
        extravars=dict(variables),
        on_event=on_event,
        timeout=timeout,
    )


def run_on_host(inventory: Mapping[str, Any], argv: Sequence[str], *, timeout: int = 120) -> str:
    """Run ``argv`` on the host (as root: the inventory's become) over Ansible's connection; its stdout."""
    from iotctl.deploy import ansible as deploy_ansible

    result, events = deploy_ansible._run(
        inventory=inventory,
        project=deploy_ansible.playbook_dir(),
        artifact_dir=None,
        timeout=timeout,
        on_event=None,
        module="ansible.builtin.command",
        module_args=shlex.join(argv),
        host_pattern=deploy_ansible.HOST_GROUP,
    )
    deploy_ansible._raise_for(result, f"`{argv[0]}` on the host")
    for event in events:
        if event["event"] == "runner_on_ok":
            return str(event["event_data"].get("res", {}).get("stdout", ""))
    raise OperationFailed(f"`{argv[0]}` on the host reported nothing; re-run with the host reachable.")


def psql(inventory: Mapping[str, Any], pg_port: int, sql: str) -> str:
    """A query on the host as PostgreSQL's superuser (peer authentication on the local socket)."""
    argv = ["runuser", "-u", "postgres", "--", "psql", "-X", "-p", str(pg_port), "-d", "iots6"]
    return run_on_host(inventory, [*argv, "-Atc", sql]).strip()


# ------------------------------------------------------------------------------------------------ the check


@dataclass(frozen=True)
class CheckResult:
    device_id: str
    broker: str
    operator_saw_it: bool
    rows_in_database: int
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.operator_saw_it and self.rows_in_database == 1

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "elapsed_s": round(self.elapsed_s, 2)}


def _endpoint(broker_host: str, tls_port: int, username: str, password: str, ca: Path, env: str):
    from iotctl.endpoints import MqttEndpoint

    return MqttEndpoint(broker_host, tls_port, username, password, "5", tls=True, ca_file=ca, env=env)


def check(
    deployment: Deployment,
    target: HostTarget,
    variables: Mapping[str, Any],
    *,
    timeout: float = 30.0,
) -> CheckResult:
    """One reading, device → broker (TLS) → ingest → database, seen by the operator's subscription too."""
    import threading

    from iotctl.broker.dynsec import DynsecAdmin
    from iotctl.broker.identities import DynsecIdentities
    from iotctl.mqtt import connect
    from iotctl.secretfiles import generate_password, read_secret
    from iots6_platform.core import contract

    started = time.monotonic()
    p = ports(variables)
    host = target.server_name or target.address
    tls_port, pg_port = p["iots6_mosquitto_tls_port"], p["iots6_postgresql_port"]
    base = str(variables.get("iots6_topic_base", "iots6"))
    secrets = deployment.secrets_dir
    ca = secrets / "tls-ca-crt"
    inventory = target.inventory(deployment.known_hosts)
    device_id = f"{CHECK_DEVICE_PREFIX}{uuid.uuid4().hex[:8]}"
    seq = int(uuid.uuid4().int % 1_000_000)

    def secret(name: str) -> str:
        return read_secret(secrets / name, f"deployment `{deployment.name}`: {name}")

    psql(
        inventory,
        pg_port,
        f"INSERT INTO devices (device_id, labels) VALUES ('{device_id}', '{{\"purpose\": \"deploy check\"}}'::jsonb)",
    )
    admin = _endpoint(host, tls_port, "admin", secret("mqtt-admin-password"), ca, deployment.name)
    identities = DynsecIdentities(DynsecAdmin(admin, where=f"`{admin.url}`"), base)
    password = generate_password()
    seen = threading.Event()
    with identities:
        identities.provision(device_id, password)
        try:
            operator = _endpoint(host, tls_port, "svc.operator", secret("mqtt-operator-password"), ca, deployment.name)

            def on_message(_client, _userdata, message) -> None:
                if message.topic == contract.topic(base, device_id, contract.TELEMETRY):
                    seen.set()

            watcher = connect(operator, on_message=on_message, timeout=15)
            try:
                subscribed = threading.Event()
                watcher.on_subscribe = lambda *_a: subscribed.set()
                watcher.subscribe(contract.topic(base, device_id, contract.TELEMETRY), qos=1)
                subscribed.wait(10)
                device = connect(_endpoint(host, tls_port, device_id, password, ca, deployment.name), device_id)
                try:
                    reading = contract.Reading(
                        datetime.now(UTC), device_id, "telemetry", seq, 21.0, 40.0, 1013.0, False, False, -50, 1, "0"
                    )
                    info = device.publish(
                        contract.topic(base, device_id, contract.TELEMETRY), contract.make_payload(reading), qos=1
                    )
                    info.wait_for_publish(timeout=timeout)
                finally:
                    device.disconnect()
                    device.loop_stop()
                seen.wait(timeout)
            finally:
                watcher.disconnect()
                watcher.loop_stop()
            rows = 0
            deadline = time.monotonic() + timeout
            query = f"SELECT count(*) FROM sensor_data WHERE device_id = '{device_id}' AND seq = {seq}"
            while time.monotonic() < deadline:
                rows = int(psql(inventory, pg_port, query) or 0)
                if rows:
                    break
                time.sleep(1)
        finally:
            identities.remove(device_id)
    psql(inventory, pg_port, f"UPDATE devices SET retired_at = now() WHERE device_id = '{device_id}'")
    result = CheckResult(device_id, f"mqtts://{host}:{tls_port}", seen.is_set(), rows, time.monotonic() - started)
    if not result.ok:
        what = "the operator's subscription saw nothing" if not result.operator_saw_it else "no row in the database"
        raise OperationFailed(
            f"The end-to-end check on `{host}` failed ({what} for device `{device_id}`); see "
            f"`journalctl -u iots6-ingest -u mosquitto` on the host, then re-run `iotctl deploy vm`."
        )
    return result


# ------------------------------------------------------------------------------------------------ register


def register(deployment: Deployment, target: HostTarget, variables: Mapping[str, Any]):
    """Write the environment: broker and config server over TLS with the deployment's CA, operator credentials."""
    from iotctl import environments as envs

    p = ports(variables)
    host = target.server_name or target.address
    https = p["iots6_proxy_https_port"]
    config_url = f"https://{host}" + ("" if https == 443 else f":{https}")
    # PostgreSQL listens on the host's loopback only: from this machine it is reached through an SSH tunnel to
    # the same port (docs/deploy-vm.md), or directly when the host is this machine. Only `db status` uses it:
    # devices are registered through the config server behind nginx (kind `vm`: iotctl.registry_api).
    database_url = f"postgresql://iots6@127.0.0.1:{p['iots6_postgresql_port']}/iots6"
    s = deployment.secrets_dir
    return envs.register_environment(
        deployment.state_dir,
        deployment.name,
        KIND,
        broker_host=host,
        broker_port=p["iots6_mosquitto_tls_port"],
        broker_tls=True,
        config_url=config_url,
        database_url=database_url,
        secrets={
            envs.MQTT_ADMIN: s / "mqtt-admin-password",
            envs.MQTT_OPERATOR: s / "mqtt-operator-password",
            envs.CONFIG_ADMIN: s / "config-admin-token",
            envs.DB_PASSWORD: s / "postgres-app-password",
            envs.CA_CERT: s / "tls-ca-crt",
        },
        topic_base=str(variables.get("iots6_topic_base", "iots6")),
        description=f"VM {target.user}@{target.address}" + (f":{target.port}" if target.port != 22 else ""),
        replace=True,
    )
