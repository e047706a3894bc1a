"""Ingest configuration, from environment variables only (so a container or the native stack can run it).

==============================  ==========================================================  ==================
variable                        meaning                                                     default
==============================  ==========================================================  ==================
INGEST_MQTT_HOST                broker host                                                 127.0.0.1
INGEST_MQTT_PORT                broker port                                                 1883 (8883 with TLS)
INGEST_MQTT_USERNAME            broker account (role ingest: read-only on <base>/#)         svc.ingest
INGEST_MQTT_PASSWORD_FILE       file holding that account's password (required)             -
INGEST_MQTT_PROTOCOL            5 (shared subscriptions) or 3.1.1 (e.g. an amqtt broker)    5
INGEST_MQTT_TLS_CA_FILE         CA certificate (PEM) the broker's certificate must chain    (none: plain TCP)
                                to; setting it turns TLS on (host name verified, TLS >= 1.2)
INGEST_MQTT_TLS_CERT_FILE       client certificate (PEM), for a listener that requires one  (none)
INGEST_MQTT_TLS_KEY_FILE        that certificate's private key (PEM, unencrypted, 0600)     (none)
INGEST_CLIENT_ID                stable client id: the persistent session's name             iots6-ingest-1
INGEST_SHARE_GROUP              MQTT v5 shared-subscription group: set it to run several     (none: one worker)
                                workers that split the stream (see the note below)
INGEST_TOPIC_BASE               first level of every topic                                  iots6
INGEST_DATABASE_URL             postgresql://user@host:port/db, no password (required)      -
INGEST_DATABASE_PASSWORD_FILE   file holding the database password                          (none: libpq's)
INGEST_BATCH_SIZE               flush when this many messages are pending                   2000
INGEST_FLUSH_MS                 ... or when the oldest pending message is this old          50
INGEST_RECEIVE_MAXIMUM          unacknowledged messages the broker may send us at once      8000
INGEST_HTTP_BIND                health and metrics listener address                         127.0.0.1
INGEST_HTTP_PORT                health (/healthz) and Prometheus (/metrics) port; 0 = off   8081
INGEST_ROLLUP_INTERVAL_S        how often written time ranges are rolled up                 10
INGEST_MAINTENANCE_INTERVAL_S   how often iots6_maintain() runs (partitions, retention)     600
INGEST_LOG_LEVEL                DEBUG, INFO, WARNING                                        INFO
==============================  ==========================================================  ==================

Shared subscriptions and broker restarts: Mosquitto 2.0.11 (Debian 12) restores a persistent session's plain
subscriptions from its persistence file after a restart, but not its *shared* ones.  Messages published between the
broker's restart and the first worker's reconnect then have no subscriber and are dropped.  With a single worker
(the default) the plain subscription loses nothing; with several workers, use a Mosquitto that restores shared
subscriptions, or accept that window (workers reconnect within about a second).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from iots6_platform.core import envconfig
from iots6_platform.core.envconfig import ConfigError
from iots6_platform.core.envconfig import integer as env_integer


@dataclass(frozen=True)
class IngestConfig:
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str = "svc.ingest"
    mqtt_password: str = ""
    mqtt_protocol: str = "5"
    mqtt_tls_ca_file: str = ""
    mqtt_tls_cert_file: str = ""
    mqtt_tls_key_file: str = ""
    client_id: str = "iots6-ingest-1"
    share_group: str = ""
    topic_base: str = "iots6"
    database_url: str = ""
    database_password: str | None = None
    batch_size: int = 2000
    flush_ms: int = 50
    receive_maximum: int = 8000
    http_bind: str = "127.0.0.1"
    http_port: int = 8081
    rollup_interval_s: float = 10.0
    maintenance_interval_s: float = 600.0
    log_level: str = "INFO"

    def __repr__(self) -> str:  # never print secrets
        return (
            f"IngestConfig(mqtt={self.mqtt_username}@{self.mqtt_host}:{self.mqtt_port} v{self.mqtt_protocol}"
            f"{' TLS' if self.mqtt_tls_ca_file else ''}, "
            f"client_id={self.client_id}, db={self.database_url}, batch={self.batch_size}/{self.flush_ms}ms)"
        )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> IngestConfig:
        env = dict(os.environ if env is None else env)

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get("INGEST_" + name)
            return value if value not in (None, "") else default

        def integer(name: str, default: int, low: int, high: int) -> int:
            return env_integer("INGEST_" + name, get(name, str(default)), low, high)

        password_file = get("MQTT_PASSWORD_FILE")
        if not password_file:
            raise ConfigError("INGEST_MQTT_PASSWORD_FILE is not set; point it at the ingest account's password file.")
        database_url = envconfig.database_url("INGEST_DATABASE_URL", get("DATABASE_URL"))
        protocol = envconfig.choice("INGEST_MQTT_PROTOCOL", get("MQTT_PROTOCOL", "5"), envconfig.MQTT_PROTOCOLS)
        tls_ca, tls_cert, tls_key = _tls_files(get)
        db_password_file = get("DATABASE_PASSWORD_FILE")
        level = envconfig.choice("INGEST_LOG_LEVEL", get("LOG_LEVEL", "INFO").upper(), envconfig.LOG_LEVELS)
        return cls(
            mqtt_host=get("MQTT_HOST", "127.0.0.1"),
            mqtt_port=integer("MQTT_PORT", 8883 if tls_ca else 1883, 1, 65535),
            mqtt_username=get("MQTT_USERNAME", "svc.ingest"),
            mqtt_password=envconfig.secret_file("INGEST_MQTT_PASSWORD_FILE", password_file),
            mqtt_protocol=protocol,
            mqtt_tls_ca_file=tls_ca,
            mqtt_tls_cert_file=tls_cert,
            mqtt_tls_key_file=tls_key,
            client_id=get("CLIENT_ID", "iots6-ingest-1"),
            share_group=get("SHARE_GROUP", ""),
            topic_base=get("TOPIC_BASE", "iots6"),
            database_url=database_url,
            database_password=(
                envconfig.secret_file("INGEST_DATABASE_PASSWORD_FILE", db_password_file) if db_password_file else None
            ),
            batch_size=integer("BATCH_SIZE", 2000, 1, 50_000),
            flush_ms=integer("FLUSH_MS", 50, 1, 60_000),
            receive_maximum=integer("RECEIVE_MAXIMUM", 8000, 1, 65_535),
            http_bind=get("HTTP_BIND", "127.0.0.1"),
            http_port=integer("HTTP_PORT", 8081, 0, 65535),
            rollup_interval_s=float(integer("ROLLUP_INTERVAL_S", 10, 1, 86_400)),
            maintenance_interval_s=float(integer("MAINTENANCE_INTERVAL_S", 600, 1, 86_400)),
            log_level=level,
        )


def _tls_files(get) -> tuple[str, str, str]:
    """INGEST_MQTT_TLS_* checked by loading them the way the reader will, so a bad file stops the start."""
    from iots6_platform.ingest.wire import tls_context

    ca, cert, key = get("MQTT_TLS_CA_FILE", ""), get("MQTT_TLS_CERT_FILE", ""), get("MQTT_TLS_KEY_FILE", "")
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
