"""Device identity: provisioning (broker account + ACL, registry row, config token, 0600 credentials file),
listing and retiring.  Works against the native stack's broker files and the configured database.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from iotctl import contract
from iotctl.broker.accounts import ROLE_DEVICE
from iotctl.endpoints import db_endpoint
from iotctl.errors import InvalidInput, NotFound
from iotctl.secretfiles import write_secret
from iotctl.settings import Settings
from iotctl.stack.layout import StackLayout
from iotctl.stack.mosquitto import MosquittoServer


@dataclass(frozen=True)
class DeviceCredentials:
    """Everything a device needs to join; written to its 0600 file and, at flash time, onto the board."""

    device_id: str
    mqtt_host: str
    mqtt_port: int
    mqtt_username: str
    mqtt_password: str
    topic_base: str
    config_url: str
    config_token: str
    provisioned_at: str

    def public(self) -> dict:
        """The non-secret part, for terminals and --json."""
        data = asdict(self)
        data.pop("mqtt_password")
        data.pop("config_token")
        data["topics"] = {
            channel: contract.topic(self.topic_base, self.device_id, channel)
            for channel in (contract.TELEMETRY, contract.EVENT, contract.STATUS, contract.CONFIG)
        }
        return data


class _DockerBroker:
    """The Docker stack's Mosquitto, seen as provisioning needs it: its account files, and a reload (SIGHUP)."""

    def __init__(self, settings: Settings):
        from iotctl.stack.docker import DockerStack

        self.stack = DockerStack(settings.state_dir / "docker")
        self.accounts = self.stack.accounts

    def reload(self) -> None:
        self.stack.reload_broker()


def _broker(settings: Settings):
    """The local stack's broker (native, or Docker when `docker` is set): ``.accounts`` and ``.reload()``."""
    if settings.docker:
        return _DockerBroker(settings)
    return MosquittoServer(
        StackLayout(settings.state_dir).mosquitto_dir, settings.mqtt_port, topic_base=settings.topic_base
    )


def config_url(settings: Settings) -> str:
    return settings.config_url or f"http://127.0.0.1:{settings.config_port}"


def validate_device_id(device_id: str) -> str:
    if not contract.valid_device_id(device_id):
        raise InvalidInput(f"Device id `{device_id}` is invalid; use 1-64 characters from A-Z, a-z, 0-9, `_` and `-`.")
    return device_id


def provision(settings: Settings, device_id: str, *, rotate: bool = False, labels: dict | None = None):
    """Create a device's identity everywhere, in one go. Returns (credentials, path of the 0600 file).

    Order: registry row and config token in one database transaction; the broker account is written inside it,
    so a broker failure rolls the registry back; the broker re-reads its files (SIGHUP) after the commit.
    """
    from iotctl.db.connect import connect
    from iotctl.devconfig.tokens import issue_device_token

    validate_device_id(device_id)
    broker = _broker(settings)
    if broker.accounts.exists(device_id) and not rotate:
        raise InvalidInput(
            f"Device `{device_id}` is already provisioned; pass --rotate to issue new credentials "
            "(the old ones stop working)."
        )
    with connect(db_endpoint(settings)) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO devices (device_id, labels) VALUES (%s, %s::jsonb) "
            "ON CONFLICT (device_id) DO UPDATE SET retired_at = NULL, "
            "labels = CASE WHEN %s THEN EXCLUDED.labels ELSE devices.labels END",
            (device_id, json.dumps(labels or {}), labels is not None),
        )
        token = issue_device_token(conn, device_id, rotate=True)
        password = broker.accounts.add(device_id, ROLE_DEVICE, rotate=rotate)
    broker.reload()
    creds = DeviceCredentials(
        device_id=device_id,
        mqtt_host=settings.mqtt_host,
        mqtt_port=settings.mqtt_port,
        mqtt_username=device_id,
        mqtt_password=password,
        topic_base=settings.topic_base,
        config_url=config_url(settings),
        config_token=token,
        provisioned_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    path = write_secret(
        StackLayout(settings.state_dir).device_file(device_id), json.dumps(asdict(creds), indent=2) + "\n"
    )
    return creds, path


def load_credentials(settings: Settings, device_id: str) -> DeviceCredentials:
    path = StackLayout(settings.state_dir).device_file(validate_device_id(device_id))
    try:
        return DeviceCredentials(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise NotFound(
            f"No credentials for device `{device_id}` in `{path.parent}`; run `iotctl device provision {device_id}`."
        ) from None


def ensure_provisioned(settings: Settings, device_id: str) -> DeviceCredentials:
    """Credentials of ``device_id``, provisioning it first when it has none."""
    try:
        return load_credentials(settings, device_id)
    except NotFound:
        return provision(settings, device_id)[0]


def list_devices(settings: Settings) -> list[dict]:
    """Registered devices with their registry state and whether the broker knows them.

    ``dropped``: readings the device reported dropping before it could send them (full offline buffer), summed
    over its stored readings by the ingest; ``dropped_at``: the time of the newest reading that reported any.
    """
    from iotctl.db.connect import connect

    accounts = set(_broker(settings).accounts.devices())
    with connect(db_endpoint(settings)) as conn:
        rows = conn.execute(
            "SELECT device_id, created_at, last_seen, status, fw, rssi, labels, retired_at, dropped_total, dropped_at "
            "FROM devices ORDER BY device_id"
        ).fetchall()
    result = []
    for device_id, created, last_seen, status, fw, rssi, labels, retired, dropped, dropped_at in rows:
        result.append(
            {
                "device_id": device_id,
                "created_at": created,
                "last_seen": last_seen,
                "status": status,
                "fw": fw,
                "rssi": rssi,
                "labels": labels,
                "retired_at": retired,
                "dropped": dropped,
                "dropped_at": dropped_at,
                "broker_account": device_id in accounts,
            }
        )
    return result


def retire(settings: Settings, device_id: str) -> None:
    """Remove the broker account and config token; keep the readings; mark the registry row retired."""
    from iotctl.db.connect import connect

    validate_device_id(device_id)
    broker = _broker(settings)
    with connect(db_endpoint(settings)) as conn, conn.transaction():
        found = conn.execute(
            "UPDATE devices SET retired_at = now() WHERE device_id = %s AND retired_at IS NULL RETURNING 1",
            (device_id,),
        ).fetchone()
        if not found and not broker.accounts.exists(device_id):
            raise NotFound(f"Device `{device_id}` is not provisioned; `iotctl device fleet` shows the fleet.")
        conn.execute("DELETE FROM device_tokens WHERE device_id = %s", (device_id,))
        if broker.accounts.exists(device_id):
            broker.accounts.remove(device_id)
    broker.reload()
    Path(StackLayout(settings.state_dir).device_file(device_id)).unlink(missing_ok=True)
