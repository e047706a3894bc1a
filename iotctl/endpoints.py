"""How the CLI reaches the broker and the database: explicit settings first, else the native stack's files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from iotctl.broker.accounts import ROLE_OPERATOR, service_username
from iotctl.errors import NotFound
from iotctl.secretfiles import read_secret
from iotctl.settings import Settings
from iotctl.stack.layout import DB_NAME, DB_OWNER, StackLayout


@dataclass(frozen=True)
class MqttEndpoint:
    host: str
    port: int
    username: str
    password: str = ""
    protocol: str = "5"  # or "3.1.1" (the embedded broker)

    def __repr__(self) -> str:  # never print the password
        return f"MqttEndpoint({self.username}@{self.host}:{self.port} v{self.protocol})"


@dataclass(frozen=True)
class DbEndpoint:
    url: str  # postgresql://user@host:port/db, without the password
    password: str | None = None

    def __repr__(self) -> str:
        return f"DbEndpoint({self.url})"


# Secret names of the native stack -> the Docker stack's (iotctl.stack.docker.SECRET_FILES).
_DOCKER_SECRETS = {ROLE_OPERATOR: "mqtt-operator", "db": "db", "admin-token": "config-admin-token"}


def stack_secret(settings: Settings, name: str) -> Path:
    """Where the local stack keeps secret ``name`` (operator, db, admin-token): native or Docker (`docker`)."""
    if settings.docker:
        from iotctl.stack.docker import DockerStack

        return DockerStack(settings.state_dir / "docker").secret_file(_DOCKER_SECRETS[name])
    return StackLayout(settings.state_dir).secret(name)


def mqtt_endpoint(settings: Settings) -> MqttEndpoint:
    if settings.mqtt_username:
        if not settings.mqtt_password_file:
            raise NotFound(
                "`mqtt_username` is set without `mqtt_password_file`; set IOTCTL_MQTT_PASSWORD_FILE as well."
            )
        password = read_secret(settings.mqtt_password_file, "MQTT password")
        return MqttEndpoint(settings.mqtt_host, settings.mqtt_port, settings.mqtt_username, password)
    secret = stack_secret(settings, ROLE_OPERATOR)
    if not secret.exists():
        raise NotFound(
            f"No broker credentials in `{settings.state_dir}`; run `iotctl stack up` or set "
            "IOTCTL_MQTT_USERNAME and IOTCTL_MQTT_PASSWORD_FILE."
        )
    return MqttEndpoint(
        settings.mqtt_host,
        settings.mqtt_port,
        service_username(ROLE_OPERATOR),
        read_secret(secret, "MQTT password"),
        _stack_protocol(settings),
    )


def _stack_protocol(settings: Settings) -> str:
    """MQTT 3.1.1 when the native stack runs the embedded broker (amqtt has no v5), else 5."""
    if settings.docker:
        return "5"
    try:
        recorded = json.loads(StackLayout(settings.state_dir).stack_file.read_text())
    except (OSError, ValueError):
        return "5"
    return "3.1.1" if recorded.get("engine") == "embedded" else "5"


def db_endpoint(settings: Settings) -> DbEndpoint:
    if settings.database_url:
        password = (
            read_secret(settings.database_password_file, "database password")
            if settings.database_password_file
            else None
        )
        return DbEndpoint(settings.database_url, password)
    secret = stack_secret(settings, "db")
    if not secret.exists():
        raise NotFound(
            f"No database credentials in `{settings.state_dir}`; run `iotctl stack up` or set "
            "IOTCTL_DATABASE_URL (and IOTCTL_DATABASE_PASSWORD_FILE)."
        )
    return DbEndpoint(
        f"postgresql://{DB_OWNER}@127.0.0.1:{settings.pg_port}/{DB_NAME}",
        read_secret(secret, "database password"),
    )
