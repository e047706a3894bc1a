"""An environment's secrets for a host deployment, as files the playbook reads (``iots6_secrets_dir``).

Every file is named as its Key Vault secret (docs/decisions.md §6; one secret per file, 0600, in a 0700 directory),
TLS included: ``tls-ca-crt``, ``tls-broker-crt``/``tls-broker-key`` (the MQTT listener), ``tls-config-crt``/
``tls-config-key`` (the HTTPS proxy in front of the config server and Grafana). :mod:`iotctl.pki` keeps its own
files (the CA's key among them, which never leaves the controller) in ``pki/`` below.
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
    issued = directory / "pki"
    ca = pki.ensure_ca(issued)
    broker = pki.issue_server_cert(ca, issued, BROKER_CERT, dns_names=dns_names, ip_addresses=ip_addresses)
    proxy = pki.issue_server_cert(ca, issued, PROXY_CERT, dns_names=dns_names, ip_addresses=ip_addresses)
    for name, source in (
        ("tls-ca-crt", ca.cert),
        ("tls-broker-crt", broker.cert),
        ("tls-broker-key", broker.key),
        ("tls-config-crt", proxy.cert),
        ("tls-config-key", proxy.key),
    ):
        target = directory / name
        if not target.exists() or target.read_bytes() != source.read_bytes():
            write_secret(target, source.read_text())
        paths[name] = target
    return paths
