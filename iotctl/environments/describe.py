"""What ``iotctl settings`` shows of the active environment: which platform values it supplies."""

from __future__ import annotations

from typing import Any

from iotctl.environments.model import BUILTIN, CONFIG_ADMIN, DB_PASSWORD, MQTT_OPERATOR
from iotctl.environments.store import active
from iotctl.settings import DEFAULT, Settings

# ------------------------------------------------------------------------------------------- iotctl settings


#: Settings that describe the platform; a registered environment supplies these itself.
PLATFORM_SETTINGS = (
    "topic_base",
    "mqtt_host",
    "mqtt_port",
    "mqtt_username",
    "mqtt_password_file",
    "pg_port",
    "database_url",
    "database_password_file",
    "config_port",
    "config_url",
    "config_admin_token_file",
    "docker",
)


def describe_settings(settings: Settings, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``iotctl settings`` rows with the active environment applied: a registered environment's values replace
    the platform settings (an explicitly set one is marked as ignored)."""
    if settings.env in BUILTIN:
        return rows
    env = active(settings)
    supplied = {
        "topic_base": env.topic_base,
        "mqtt_host": env.broker.host,
        "mqtt_port": str(env.broker.port),
        "mqtt_username": "svc.operator",
        "mqtt_password_file": str(env.secret_file(MQTT_OPERATOR) or env.credentials),
        "database_url": env.database.url,
        "database_password_file": str(env.secret_file(DB_PASSWORD) or env.credentials),
        "config_url": env.config_url,
        "config_admin_token_file": str(env.secret_file(CONFIG_ADMIN) or env.credentials),
    }
    out = []
    for row in rows:
        key = row["key"]
        if key in PLATFORM_SETTINGS:
            row = dict(row)
            ignored = row["source"] != DEFAULT
            row["value"] = supplied.get(key)
            row["source"] = f"environment `{env.name}` ({env.file})"
            if ignored:
                row["source"] += f"; {settings.sources[key]} ignored"
        out.append(row)
    return out
