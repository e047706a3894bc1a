"""Config server configuration: environment variables, overridden key by key by ``create_app(config)``.

==================================  ====================================================  ================
variable                            meaning                                               default
==================================  ====================================================  ================
CONFIG_SERVER_DATABASE_URL          postgresql://user@host:port/db, no password           (required)
CONFIG_SERVER_DATABASE_PASSWORD_FILE file holding the database password                   (none: libpq's)
CONFIG_SERVER_ADMIN_TOKEN_FILE      0600 file holding the admin bearer token              (required)
CONFIG_SERVER_MQTT_HOST             broker for change notices; unset: notices off         (unset)
CONFIG_SERVER_MQTT_PORT             broker port                                           1883
CONFIG_SERVER_MQTT_USERNAME         broker account (role config: iots6/+/config)          svc.config
CONFIG_SERVER_MQTT_PASSWORD_FILE    file holding that account's password                  (required w/ host)
CONFIG_SERVER_MQTT_PROTOCOL         5, or 3.1.1 for a broker without v5 (e.g. amqtt)      5
CONFIG_SERVER_TOPIC_BASE            first level of every topic                            iots6
CONFIG_SERVER_BIND                  listen address                                        127.0.0.1
CONFIG_SERVER_PORT                  listen port                                           8080
CONFIG_SERVER_WORKERS               gunicorn worker processes                             2
CONFIG_SERVER_LOG_LEVEL             DEBUG, INFO, WARNING, ERROR                           INFO
==================================  ====================================================  ================

In the ``create_app`` dict the keys are the names without the prefix (``DATABASE_URL``...); tests may also
pass ``DATABASE_PASSWORD``, ``ADMIN_TOKEN`` and ``MQTT_PASSWORD`` directly instead of files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from iots6_platform.core import envconfig
from iots6_platform.core.envconfig import ConfigError

__all__ = ["ConfigError", "ServerConfig", "load"]

PREFIX = "CONFIG_SERVER_"


@dataclass(frozen=True)
class ServerConfig:
    database_url: str
    database_password: str | None
    admin_token: str
    mqtt_host: str | None = None
    mqtt_port: int = 1883
    mqtt_username: str = "svc.config"
    mqtt_password: str = ""
    mqtt_protocol: str = "5"
    topic_base: str = "iots6"
    bind: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    log_level: str = "INFO"

    def __repr__(self) -> str:  # never print secrets
        mqtt = f"{self.mqtt_username}@{self.mqtt_host}:{self.mqtt_port}" if self.mqtt_host else "off"
        return f"ServerConfig(db={self.database_url}, mqtt={mqtt}, listen={self.bind}:{self.port})"


def load(overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> ServerConfig:
    """Resolve the configuration: ``CONFIG_SERVER_*`` env vars < ``overrides`` (keys without the prefix)."""
    env = dict(os.environ if env is None else env)
    overrides = dict(overrides or {})

    def get(name: str, default: Any = None) -> Any:
        if overrides.get(name) not in (None, ""):
            return overrides[name]
        value = env.get(PREFIX + name)
        return value if value not in (None, "") else default

    def integer(name: str, default: int, low: int, high: int) -> int:
        return envconfig.integer(PREFIX + name, get(name, default), low, high)

    def secret(name: str, required: str | None) -> str | None:
        if overrides.get(name):
            return str(overrides[name])
        path = get(name + "_FILE")
        if path:
            return envconfig.secret_file(f"{PREFIX}{name}_FILE", str(path))
        if required:
            raise ConfigError(f"{PREFIX}{name}_FILE is not set; {required}.")
        return None

    database_url = envconfig.database_url(f"{PREFIX}DATABASE_URL", get("DATABASE_URL"))
    admin_token = secret("ADMIN_TOKEN", "point it at the 0600 file holding the admin token")
    mqtt_host = get("MQTT_HOST")
    mqtt_password = ""
    if mqtt_host:
        mqtt_password = secret("MQTT_PASSWORD", "point it at the svc.config account's password file") or ""
    mqtt_protocol = envconfig.choice(f"{PREFIX}MQTT_PROTOCOL", str(get("MQTT_PROTOCOL", "5")), envconfig.MQTT_PROTOCOLS)
    level = envconfig.choice(f"{PREFIX}LOG_LEVEL", str(get("LOG_LEVEL", "INFO")).upper(), envconfig.LOG_LEVELS)
    return ServerConfig(
        database_url=str(database_url),
        database_password=secret("DATABASE_PASSWORD", None),
        admin_token=str(admin_token),
        mqtt_host=str(mqtt_host) if mqtt_host else None,
        mqtt_port=integer("MQTT_PORT", 1883, 1, 65535),
        mqtt_username=str(get("MQTT_USERNAME", "svc.config")),
        mqtt_password=mqtt_password,
        mqtt_protocol=mqtt_protocol,
        topic_base=str(get("TOPIC_BASE", "iots6")),
        bind=str(get("BIND", "127.0.0.1")),
        port=integer("PORT", 8080, 0, 65535),
        workers=integer("WORKERS", 2, 1, 32),
        log_level=level,
    )
