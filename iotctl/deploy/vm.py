"""``iotctl deploy vm``: the whole platform on one host, from an Azure subscription (or a host you have) to a
registered environment.

The flow (:func:`deploy`), each step safe to repeat:

1. **Terraform** (``infra/terraform/vm``, through :class:`~iotctl.deploy.terraform.TerraformRoot`): plan with the
   operator's public address as the only SSH source (detected, or ``ssh_from``), show the plan through the
   ``confirm`` callback, apply the saved plan. A plan without changes applies nothing.
   Skipped with a :class:`HostTarget` given (``--host USER@ADDR``): an existing Debian 12 / Ubuntu 24.04 host.
2. **Ansible** (``infra/ansible/site.yml``, through :func:`iotctl.deploy.ansible.converge`) against the VM from the
   outputs (admin user, FQDN, the operator's SSH key; the host firewall from ``allowed_inbound``; the data disk's
   LUN), with the environment's secrets and certificates made by :func:`iotctl.deploy.secrets.ensure_secrets`.
3. **End-to-end check** (:func:`check`): a throw-away device made through the broker's dynamic security (as
   ``admin``, over TLS) publishes one reading over TLS; the operator account (what ``tail`` uses) must receive it,
   and a query run on the host over the same connection Ansible uses must find it in the database. The database is
   read over SSH, not over the network, because PostgreSQL listens on the host's loopback only (nothing but 8883 and
   443 is exposed); the config server is not the judge because it does not serve readings. The device's broker
   client and role are deleted afterwards; its registry row stays retired with the one reading, as a record.
4. **Register** the environment (kind ``vm``): broker FQDN and TLS port with the environment's CA, the config
   server's HTTPS URL, the operator's credential files (0600) under ``<state_dir>/environments/<name>/``.

Everything for one deployment lives in ``<state_dir>/deploy/vm/<name>/`` (0700): ``terraform/`` (state, plans,
the 0600 var file), ``secrets/`` (every secret and certificate the playbook installs, 0600; the CA's key in
``secrets/pki/``), ``bundles/``, ``known_hosts`` and ``deployment.json`` (the target and ports, no secret).

No typer or rich here: progress goes to the ``progress`` callback, failures are iotctl's typed errors.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iotctl.errors import InvalidInput, NotFound, OperationFailed, Unreachable

KIND = "vm"
ROOT = "vm"
HOST_ALIAS = "vm"
#: Where Azure exposes a data disk attached at LUN n (the udev rules of Azure's Debian images).
AZURE_DATA_DEVICE = "/dev/disk/azure/scsi1/lun{lun}"
#: Answer with the caller's public IPv4 address as plain text; the first that answers wins.
IP_ECHO_URLS = ("https://api.ipify.org", "https://checkip.amazonaws.com", "https://ifconfig.me/ip")
IP_ECHO_ENV = "IOTCTL_IP_ECHO_URL"
#: The playbook's defaults for the ports that matter here (roles' defaults/main.yml); extra vars override them.
DEFAULT_PORTS = {"iots6_mosquitto_tls_port": 8883, "iots6_proxy_https_port": 443, "iots6_postgresql_port": 5432}
SERVICES = (
    "mosquitto.service",
    "postgresql@15-main.service",
    "iots6-ingest.service",
    "iots6-config-server.service",
    "nginx.service",
    "iots6-backup.timer",
)
CHECK_DEVICE_PREFIX = "iotctl-check-"
_TF_ENV_NAME = re.compile(r"^[a-z][a-z0-9]{1,9}$")

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


# ------------------------------------------------------------------------------------------------ the target


@dataclass(frozen=True)
class HostTarget:
    """The host Ansible configures: the Azure VM from Terraform's outputs, or ``--host USER@ADDR[:PORT]``."""

    address: str
    user: str
    port: int = 22
    key_file: Path | None = None
    #: The name devices and the operator use (the FQDN; for ``--host``, the address): certificates name it.
    server_name: str = ""
    data_device: str = ""
    #: Host firewall rules (port -> CIDRs) when Terraform's NSG says what they are.
    allowed_inbound: Mapping[str, Sequence[str]] | None = None

    @classmethod
    def parse(cls, spec: str, *, key_file: Path | None = None) -> HostTarget:
        """``USER@ADDR`` or ``USER@ADDR:PORT`` (``USER@[v6]:PORT`` for IPv6)."""
        match = re.fullmatch(r"([a-z_][a-z0-9_.-]*)@(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?", spec or "")
        if not match:
            raise InvalidInput(f"`--host {spec}` is not USER@ADDRESS[:PORT]; pass e.g. --host debian@203.0.113.7.")
        user, address, port = match.group(1), match.group(2).strip("[]"), int(match.group(3) or 22)
        if not 1 <= port <= 65535:
            raise InvalidInput(f"SSH port `{port}` of `--host {spec}` is not 1-65535; fix the port.")
        return cls(address=address, user=user, port=port, key_file=key_file, server_name=address)

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            return False
        return True

    @property
    def loopback(self) -> bool:
        return self.server_name in ("localhost",) or (self.is_ip and ipaddress.ip_address(self.address).is_loopback)

    def inventory(self, known_hosts: Path) -> dict[str, Any]:
        """A YAML-shaped inventory: group ``iots6`` with this one host, reached over SSH."""
        host: dict[str, Any] = {
            "ansible_host": self.address,
            "ansible_user": self.user,
            "ansible_port": self.port,
            "ansible_python_interpreter": "/usr/bin/python3",
            # Trust on first use, remembered per deployment (never the operator's own known_hosts).
            "ansible_ssh_common_args": f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={known_hosts}",
        }
        # The play becomes root (sudo over SSH); a root login needs no become.
        host["ansible_become"] = self.user != "root"
        if self.key_file:
            host["ansible_ssh_private_key_file"] = str(self.key_file)
        return {"iots6": {"hosts": {HOST_ALIAS: host}}}

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["key_file"] = str(self.key_file) if self.key_file else None
        data["allowed_inbound"] = dict(self.allowed_inbound) if self.allowed_inbound else None
        return data


@dataclass(frozen=True)
class AzureOptions:
    """What the Terraform root needs from the operator (``infra/terraform/vm/variables.tf``)."""

    location: str = "westeurope"
    ssh_key: Path | None = None  # the private key; its public half is `<key>.pub`
    ssh_from: str | None = None  # CIDR; None: detect the operator's address
    mqtt_sources: tuple[str, ...] = ("0.0.0.0/0",)
    https_sources: tuple[str, ...] = ("0.0.0.0/0",)
    vm_size: str | None = None
    subscription_id: str | None = None
    admin_username: str | None = None


# ------------------------------------------------------------------------------------------------ the paths


@dataclass(frozen=True)
class Deployment:
    """One VM deployment's files on the operator's machine."""

    state_dir: Path
    name: str

    @property
    def home(self) -> Path:
        return Path(self.state_dir) / "deploy" / KIND / self.name

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def terraform_dir(self) -> Path:
        return self.home / "terraform"

    @property
    def bundles_dir(self) -> Path:
        return self.home / "bundles"

    @property
    def known_hosts(self) -> Path:
        return self.home / "known_hosts"

    @property
    def record_file(self) -> Path:
        return self.home / "deployment.json"

    def make(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in (self.home.parent.parent, self.home.parent, self.home):
            os.chmod(path, 0o700)

    def record(self) -> dict[str, Any]:
        try:
            return json.loads(self.record_file.read_text())
        except (OSError, ValueError):
            return {}

    def save(self, data: Mapping[str, Any]) -> None:
        from iotctl.secretfiles import write_secret

        write_secret(self.record_file, json.dumps(dict(data), indent=2, sort_keys=True, default=str) + "\n")


def validate_name(name: str, *, azure: bool) -> str:
    from iotctl.environments import BUILTIN
    from iotctl.environments import validate_name as validate_env

    validate_env(name)
    if name in BUILTIN:
        raise InvalidInput(f"`{name}` is a built-in environment; choose another name for the VM's environment.")
    if azure and not _TF_ENV_NAME.match(name):
        raise InvalidInput(
            f"Environment name `{name}` cannot name Azure resources; use 2-10 lowercase letters and digits, "
            "starting with a letter (e.g. `prod`, `lab1`)."
        )
    return name


# ----------------------------------------------------------------------------------- the operator's address


def detect_operator_cidr(urls: Sequence[str] | None = None, timeout: float = 5.0) -> str:
    """The operator's public IPv4 address as a /32, asked of an IP echo service (``IOTCTL_IP_ECHO_URL`` first)."""
    if urls is None:
        override = os.environ.get(IP_ECHO_ENV)
        urls = (override,) if override else IP_ECHO_URLS
    problems = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - https URLs we chose
                text = response.read(64).decode("ascii", "replace").strip()
            address = ipaddress.ip_address(text)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            problems.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
            continue
        # A stand-in echo service (IOTCTL_IP_ECHO_URL, tests) may answer a private or loopback address.
        if address.version != 4 or (not address.is_global and not os.environ.get(IP_ECHO_ENV)):
            problems.append(f"{url}: answered `{address}`, not a public IPv4 address")
            continue
        return f"{address}/32"
    raise Unreachable(
        f"Could not detect your public address for the SSH rule ({problems[0] if problems else 'no URL'}); "
        "pass --ssh-from CIDR (e.g. --ssh-from 203.0.113.7/32)."
    )


def operator_cidr_for(target: HostTarget, ssh_from: str | None) -> str:
    """The SSH source for ``--host``: ``ssh_from``, else the detected public address, except for a host on a
    private network, where the public address is not the one the host sees (its firewall would lock you out)."""
    if ssh_from:
        return check_cidr(ssh_from, "--ssh-from")
    if target.is_ip and not ipaddress.ip_address(target.address).is_global:
        raise InvalidInput(
            f"`--host {target.address}` is a private address, so your public address is not the one it sees; pass "
            "--ssh-from CIDR with the address (or network) you SSH from (the host firewall allows SSH only from it)."
        )
    return detect_operator_cidr()


def check_cidr(value: str, what: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise InvalidInput(f"`{value}` is not a CIDR for {what}; pass e.g. 203.0.113.7/32.") from None
    return str(network)


# ------------------------------------------------------------------------------------------------ Terraform


def terraform_source() -> Path:
    path = Path(__file__).resolve().parents[2] / "infra" / "terraform"
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


# ------------------------------------------------------------------------------------------------ the flows


@dataclass
class DeployResult:
    environment: str
    kind: str = KIND
    target: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] | None = None
    applied: bool = False
    playbook: dict[str, Any] | None = None
    check: dict[str, Any] | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    cancelled: bool = False

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``: paths and counts only, never a secret's value."""
        return asdict(self)


def plan(
    deployment: Deployment, azure: AzureOptions, *, progress: Progress = _quiet, source: Path | None = None
) -> tuple[Any, Any, Path]:
    """Init and plan the Terraform root; returns (root, plan, private key)."""
    key, line = public_key(azure.ssh_key)
    ssh_cidr = check_cidr(azure.ssh_from, "--ssh-from") if azure.ssh_from else None
    if ssh_cidr is None:
        progress("detecting your public address for the SSH rule")
        ssh_cidr = detect_operator_cidr()
    deployment.make()
    root = terraform_root(deployment, terraform_variables(deployment.name, azure, ssh_cidr, line), source=source)
    progress(f"terraform init ({deployment.terraform_dir})")
    root.init()
    progress("terraform plan")
    return root, root.plan(), key


def deploy(
    deployment: Deployment,
    *,
    azure: AzureOptions | None = None,
    host: HostTarget | None = None,
    operator_cidr: str | None = None,
    extravars: Mapping[str, Any] | None = None,
    confirm: Callable[[Any], bool] = lambda _plan: False,
    progress: Progress = _quiet,
    on_event: Callable[[Any], None] | None = None,
    run_check: bool = True,
    source: Path | None = None,
) -> DeployResult:
    """The one-command path: Terraform (unless ``host``), Ansible, the check, the environment."""
    validate_name(deployment.name, azure=host is None)
    result = DeployResult(environment=deployment.name)
    variables_in = dict(extravars or {})
    if host is None:
        azure = azure or AzureOptions()
        root, the_plan, key = plan(deployment, azure, progress=progress, source=source)
        result.plan = the_plan.as_dict()
        operator_cidr = root.variables["ssh_source_cidrs"][0]
        if the_plan.has_changes:
            if not confirm(the_plan):
                result.cancelled = True
                return result
            progress("terraform apply")
            root.apply(the_plan)
            result.applied = True
        else:
            progress("terraform: no changes")
        result.outputs = root.outputs()
        target = target_from_outputs(result.outputs, key)
    else:
        deployment.make()
        target = host
        if operator_cidr:
            operator_cidr = check_cidr(operator_cidr, "--ssh-from")
    variables = playbook_variables(target, operator_cidr, variables_in)
    ports(variables)  # a bad port fails before anything runs
    deployment.save({"target": target.public(), "extravars": variables_in, "operator_cidr": operator_cidr})
    progress(f"ansible: converging {target.user}@{target.address}")
    playbook = configure(deployment, target, variables, on_event=on_event)
    result.playbook = playbook.as_dict()
    result.target = target.public()
    if run_check:
        progress("checking: one reading over TLS into the database")
        result.check = check(deployment, target, variables).as_dict()
    env = register(deployment, target, variables)
    progress(f"registered environment `{env.name}` ({env.file})")
    result.endpoints = {"mqtt": env.broker.url, "config": env.config_url, "database": env.database.url or ""}
    result.credentials = {
        "environment_file": str(env.file),
        "operator_credentials": str(env.home),
        "deployment_secrets": str(deployment.secrets_dir),
        "ca": str(env.ca_file) if env.ca_file else "",
    }
    return result


def status(deployment: Deployment, *, source: Path | None = None) -> DeployResult:
    """Terraform's outputs (when Terraform made the host) and each service's state on the host."""
    record = deployment.record()
    if not record.get("target"):
        raise NotFound(
            f"No VM deployment `{deployment.name}` in `{deployment.home}`; deploy it with "
            f"`iotctl deploy vm --env {deployment.name}`."
        )
    data = dict(record["target"])
    target = HostTarget(
        address=data["address"],
        user=data["user"],
        port=int(data.get("port", 22)),
        key_file=Path(data["key_file"]) if data.get("key_file") else None,
        server_name=data.get("server_name", ""),
    )
    result = DeployResult(environment=deployment.name, target=target.public())
    if (deployment.terraform_dir / "terraform.tfstate").exists():
        root = terraform_root(deployment, source=source)
        root.init()
        result.outputs = root.outputs()
    shell = "systemctl is-active " + " ".join(SERVICES) + " || true"
    out = run_on_host(target.inventory(deployment.known_hosts), ["sh", "-c", shell])
    result.services = dict(zip(SERVICES, out.split(), strict=False))
    return result


def destroy(
    deployment: Deployment,
    *,
    confirm: Callable[[str, Any], bool],
    progress: Progress = _quiet,
    source: Path | None = None,
) -> DeployResult:
    """``terraform plan -destroy`` → ``confirm(resource group, plan)`` → apply; then unregister the environment."""
    from iotctl import environments as envs

    if not (deployment.terraform_dir / "terraform.tfstate").exists():
        raise NotFound(
            f"No Terraform state for `{deployment.name}` in `{deployment.terraform_dir}`; a host configured with "
            "--host is not destroyed by iotctl (remove it with `iotctl env remove`)."
        )
    variables_file = deployment.terraform_dir / "iotctl.tfvars.json"
    variables = json.loads(variables_file.read_text()) if variables_file.exists() else {}
    root = terraform_root(deployment, variables, source=source)
    progress("terraform init")
    root.init()  # stages the module again (this iotctl's copy) and selects this environment's state
    outputs = root.outputs()
    group = str(outputs.get("resource_group_name") or deployment.name)
    progress("terraform plan -destroy")
    the_plan = root.plan(destroy=True)
    result = DeployResult(environment=deployment.name, plan=the_plan.as_dict(), outputs=outputs)
    if not confirm(group, the_plan):
        result.cancelled = True
        return result
    progress(f"terraform apply (destroying `{group}`)")
    root.apply(the_plan)
    result.applied = True
    try:
        envs.remove_environment(deployment.state_dir, deployment.name)
        progress(f"removed environment `{deployment.name}`")
    except NotFound:
        pass
    return result
