"""Every secret an AKS environment needs, under one naming scheme, with who consumes it.

One Key Vault per environment, so names carry no environment: ``<component>-<what>``, lower case, dash-separated
(Key Vault allows ``[0-9a-zA-Z-]``). The Helm chart's ExternalSecrets read exactly these names and
``iotctl secrets seed`` writes exactly these (a test checks both against this list); ``docs/deploy-aks.md`` shows
the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    TERRAFORM = "terraform"  # written by Terraform itself (write-only arguments): iotctl never writes it
    PASSWORD = "password"  # 192 random bits, URL-safe text
    TOKEN = "token"  # 256 random bits, URL-safe text
    TLS = "tls"  # PEM, generated together by iotctl.pki: the CA and the server certificates it signs


@dataclass(frozen=True)
class SecretSpec:
    name: str
    kind: Kind
    what: str
    picked_up_by: str

    @property
    def content_type(self) -> str:
        return "application/x-pem-file" if self.kind is Kind.TLS else "text/plain"


_RESTART_DB = "the ingest and config-server pods, rolled by the chart's checksum annotation after ESO refreshes"
_RESTART_BROKER = "the broker's reconcile Job on the next sync, then the client's pods"

CATALOG: tuple[SecretSpec, ...] = (
    SecretSpec(
        "postgres-admin-password",
        Kind.TERRAFORM,
        "PostgreSQL server admin (migrations); Terraform generates it and sets server and vault together",
        "the next migration Job, after `postgres_admin_password_version` is bumped in Terraform",
    ),
    SecretSpec("postgres-app-password", Kind.PASSWORD, "PostgreSQL role of the ingest and config server", _RESTART_DB),
    SecretSpec(
        "postgres-grafana-password",
        Kind.PASSWORD,
        "PostgreSQL read-only role of Grafana's datasource",
        "the Grafana pod",
    ),
    SecretSpec("mqtt-admin-password", Kind.PASSWORD, "Mosquitto dynamic-security admin", _RESTART_BROKER),
    SecretSpec("mqtt-ingest-password", Kind.PASSWORD, "broker client svc.ingest", _RESTART_BROKER),
    SecretSpec("mqtt-config-password", Kind.PASSWORD, "broker client svc.config", _RESTART_BROKER),
    SecretSpec(
        "mqtt-operator-password", Kind.PASSWORD, "broker client svc.operator (tail, provisioning)", _RESTART_BROKER
    ),
    SecretSpec("config-admin-token", Kind.TOKEN, "config server admin bearer token", "the config-server pods"),
    SecretSpec("grafana-admin-password", Kind.PASSWORD, "Grafana admin user", "the Grafana pod"),
    SecretSpec("tls-ca-crt", Kind.TLS, "the environment's CA certificate (devices get it at flash time)", "every pod"),
    SecretSpec("tls-ca-key", Kind.TLS, "the CA's private key (never mounted by any pod)", "iotctl only"),
    SecretSpec("tls-broker-crt", Kind.TLS, "the broker's TLS certificate (8883)", "the broker pod"),
    SecretSpec("tls-broker-key", Kind.TLS, "the broker's TLS key", "the broker pod"),
    SecretSpec("tls-config-crt", Kind.TLS, "the config server's HTTPS certificate", "the config-server ingress"),
    SecretSpec("tls-config-key", Kind.TLS, "the config server's HTTPS key", "the config-server ingress"),
)

BY_NAME: dict[str, SecretSpec] = {spec.name: spec for spec in CATALOG}
TLS_NAMES: tuple[str, ...] = tuple(spec.name for spec in CATALOG if spec.kind is Kind.TLS)
