"""What ``deploy vm`` works on: the host (:class:`HostTarget`), the Azure options, the deployment's files under
the state dir, and the operator's address for the allow-lists."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from iotctl.errors import InvalidInput, Unreachable

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


def no_progress(_message: str) -> None:
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
