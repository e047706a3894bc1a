"""Config server configuration: environment variables, overridden key by key by ``create_app(config)``.

The variables (``CONFIG_SERVER_*``), their types, defaults and ranges are defined once, in
:class:`iots6_platform.core.settings.ConfigServerSettings`; docs/config-server.md's table is generated from it.

In the ``create_app`` dict the keys are the names without the prefix (``DATABASE_URL``...); tests may also
pass ``DATABASE_PASSWORD``, ``ADMIN_TOKEN`` and ``MQTT_PASSWORD`` directly instead of files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from iots6_platform.core.settings import ConfigError, ConfigServerSettings, read_secrets

__all__ = ["ConfigError", "ServerConfig", "load"]

#: Secrets ``create_app`` may pass directly (tests), instead of their ``*_FILE``.
DIRECT_SECRETS = ("DATABASE_PASSWORD", "ADMIN_TOKEN", "MQTT_PASSWORD")


@dataclass(frozen=True)
class ServerConfig:
    """The resolved configuration: :class:`ConfigServerSettings` with the secrets read."""

    database_url: str
    database_password: str | None
    admin_token: str
    mqtt_host: str | None
    mqtt_port: int
    mqtt_username: str
    mqtt_password: str
    mqtt_protocol: str
    topic_base: str
    bind: str
    port: int
    workers: int
    log_level: str

    def __repr__(self) -> str:  # never print secrets
        mqtt = f"{self.mqtt_username}@{self.mqtt_host}:{self.mqtt_port}" if self.mqtt_host else "off"
        return f"ServerConfig(db={self.database_url}, mqtt={mqtt}, listen={self.bind}:{self.port})"


def load(overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> ServerConfig:
    """Resolve the configuration: ``CONFIG_SERVER_*`` env vars < ``overrides`` (keys without the prefix)."""
    overrides = {k: v for k, v in (overrides or {}).items() if v not in (None, "")}
    fields = ConfigServerSettings.model_fields
    given = {k.lower(): v for k, v in overrides.items() if k in DIRECT_SECRETS}
    settings = ConfigServerSettings.from_environ(
        os.environ if env is None else env,
        given=set(given),
        **{k.lower(): v for k, v in overrides.items() if k.lower() in fields},
    )
    secrets = read_secrets(settings, given)
    return ServerConfig(
        database_url=settings.database_url,
        database_password=secrets["database_password"],
        admin_token=str(secrets["admin_token"]),
        mqtt_host=settings.mqtt_host,
        mqtt_port=settings.mqtt_port,
        mqtt_username=settings.mqtt_username,
        mqtt_password=(secrets["mqtt_password"] or "") if settings.mqtt_host else "",
        mqtt_protocol=settings.mqtt_protocol,
        topic_base=settings.topic_base,
        bind=settings.bind,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
    )
