"""An environment's secrets for a host deployment, as files the playbook reads (``iots6_secrets_dir``).

File names are the Key Vault secret names of DECISIONS §6 (one secret per file, 0600, in a 0700 directory);
the TLS files are those of :mod:`iotctl.pki` (``ca.crt``/``ca.key``, ``broker.crt``/``.key`` for the MQTT
listener, ``config.crt``/``.key`` for the HTTPS proxy in front of the config server and Grafana).
``ensure_secrets`` creates what is missing and keeps what exists, so a re-deploy never rotates anything by
accident; rotating is deleting (or overwriting) a file and re-running the deploy (docs/deploy-vm.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from iotctl import pki
from iotctl.secretfiles import generate_password, write_secret

PASSWORDS = (
    "mqtt-admin-password",
    "mqtt-ingest-password",
    "mqtt-config-password",
    "mqtt-operator-password",
    "postgres-app-password",
    "postgres-grafana-password",
    "config-admin-token",
    "grafana-admin-password",
)
BROKER_CERT = "broker"
PROXY_CERT = "config"


def ensure_secrets(directory: Path, dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = ()) -> dict[str, Path]:
    """Create the missing secrets and certificates for a host reached as ``dns_names``/``ip_addresses``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    paths: dict[str, Path] = {}
    for name in PASSWORDS:
        path = directory / name
        if not path.exists():
            write_secret(path, generate_password(32 if name == "config-admin-token" else 24) + "\n")
        paths[name] = path
    ca = pki.ensure_ca(directory)
    broker = pki.issue_server_cert(ca, directory, BROKER_CERT, dns_names=dns_names, ip_addresses=ip_addresses)
    proxy = pki.issue_server_cert(ca, directory, PROXY_CERT, dns_names=dns_names, ip_addresses=ip_addresses)
    paths.update({"ca.crt": ca.cert, "broker.crt": broker.cert, "broker.key": broker.key})
    paths.update({"config.crt": proxy.cert, "config.key": proxy.key})
    return paths
