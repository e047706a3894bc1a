"""Ingest configuration, from environment variables only (so a container or the native stack can run it).

The variables (``INGEST_*``), their types, defaults and ranges are defined once, in
:class:`iots6_platform.core.settings.IngestSettings`; docs/ingest.md's table is generated from it.

Shared subscriptions and broker restarts: Mosquitto 2.0.11 (Debian 12) restores a persistent session's plain
subscriptions from its persistence file after a restart, but not its *shared* ones.  Messages published between the
broker's restart and the first worker's reconnect then have no subscriber and are dropped.  With a single worker
(the default) the plain subscription loses nothing; with several workers, use a Mosquitto that restores shared
subscriptions, or accept that window (workers reconnect within about a second).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from iots6_platform.core.settings import ConfigError, IngestSettings, read_secrets

__all__ = ["ConfigError", "IngestConfig"]


@dataclass(frozen=True)
class IngestConfig:
    """The resolved configuration: :class:`IngestSettings` with the secrets read and the TLS files checked."""

    mqtt_host: str
    mqtt_port: int
    mqtt_username: str
    mqtt_password: str
    mqtt_protocol: str
    mqtt_tls_ca_file: str
    mqtt_tls_cert_file: str
    mqtt_tls_key_file: str
    client_id: str
    share_group: str
    topic_base: str
    database_url: str
    database_password: str | None
    batch_size: int
    flush_ms: int
    receive_maximum: int
    http_bind: str
    http_port: int
    rollup_interval_s: float
    maintenance_interval_s: float
    log_level: str

    def __repr__(self) -> str:  # never print secrets
        return (
            f"IngestConfig(mqtt={self.mqtt_username}@{self.mqtt_host}:{self.mqtt_port} v{self.mqtt_protocol}"
            f"{' TLS' if self.mqtt_tls_ca_file else ''}, "
            f"client_id={self.client_id}, db={self.database_url}, batch={self.batch_size}/{self.flush_ms}ms)"
        )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> IngestConfig:
        settings = IngestSettings.from_environ(os.environ if env is None else env)
        secrets = read_secrets(settings)
        tls_ca, tls_cert, tls_key = _tls_files(settings)
        return cls(
            mqtt_host=settings.mqtt_host,
            mqtt_port=settings.mqtt_port or (8883 if tls_ca else 1883),
            mqtt_username=settings.mqtt_username,
            mqtt_password=str(secrets["mqtt_password"]),
            mqtt_protocol=settings.mqtt_protocol,
            mqtt_tls_ca_file=tls_ca,
            mqtt_tls_cert_file=tls_cert,
            mqtt_tls_key_file=tls_key,
            client_id=settings.client_id,
            share_group=settings.share_group,
            topic_base=settings.topic_base,
            database_url=settings.database_url,
            database_password=secrets["database_password"],
            batch_size=settings.batch_size,
            flush_ms=settings.flush_ms,
            receive_maximum=settings.receive_maximum,
            http_bind=settings.http_bind,
            http_port=settings.http_port,
            rollup_interval_s=float(settings.rollup_interval_s),
            maintenance_interval_s=float(settings.maintenance_interval_s),
            log_level=settings.log_level,
        )


def _tls_files(settings: IngestSettings) -> tuple[str, str, str]:
    """INGEST_MQTT_TLS_* checked by loading them the way the reader will, so a bad file stops the start."""
    from iots6_platform.ingest.wire import tls_context

    ca, cert, key = settings.mqtt_tls_ca_file, settings.mqtt_tls_cert_file, settings.mqtt_tls_key_file
    if bool(cert) != bool(key):
        raise ConfigError(
            "INGEST_MQTT_TLS_CERT_FILE and INGEST_MQTT_TLS_KEY_FILE go together; set both (a client certificate "
            "and its key) or neither."
        )
    if cert and not ca:
        raise ConfigError(
            "INGEST_MQTT_TLS_CERT_FILE is set without INGEST_MQTT_TLS_CA_FILE; set the CA file that signed the "
            "broker's certificate."
        )
    if not ca:
        return "", "", ""
    try:
        tls_context(ca)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"INGEST_MQTT_TLS_CA_FILE=`{ca}` cannot be loaded ({_why(exc)}); point it at the CA certificate (PEM)."
        ) from None
    if cert:
        try:
            tls_context(ca, cert, key)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"INGEST_MQTT_TLS_CERT_FILE=`{cert}` with INGEST_MQTT_TLS_KEY_FILE=`{key}` cannot be loaded "
                f"({_why(exc)}); point them at a PEM certificate and its unencrypted private key."
            ) from None
    return ca, cert, key


def _why(exc: Exception) -> str:
    """OpenSSL's reason in words (``KEY_VALUES_MISMATCH`` -> key values mismatch), or the OS error's."""
    reason = getattr(exc, "reason", None)
    if reason:
        return reason.replace("_", " ").lower()
    return getattr(exc, "strerror", None) or str(exc)
