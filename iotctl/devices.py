"""Device identity in the active environment: provisioning (broker client + role, registry row, config token,
0600 credentials file), listing and retiring.

The broker side goes through ``iotctl.broker.identities`` (Mosquitto's dynamic security, or the embedded
broker's registry); the registry row and the config token live in the environment's database.  One device is
made all-or-nothing:

1. the registry row and the config token are written in one database transaction;
2. inside it, the broker client is created (or re-enabled with a new password) and the credentials file is
   written next to its final name;
3. the transaction commits and the file takes its name.

A failure before the commit rolls the database back, deletes the new broker client (or disables a re-used one)
and leaves no file.  If even that clean-up cannot reach the broker, the device is left "broker only" and the
next ``device provision`` of the same id repairs it without ``--rotate``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from iotctl.broker.identities import ACTIVE
from iotctl.errors import InvalidInput, NotFound
from iotctl.secretfiles import generate_password, write_secret
from iotctl.settings import Settings
from iots6_platform.core import contract

#: The newest stored reading of each device, from ``latest_reading`` (one row per device, kept by the ingest): the
#: fleet's current values cost the same whatever the retention of the readings.
LATEST_FIELDS = ("time", "kind", "temperature", "humidity", "pressure", "motion", "switch")
LIST_DEVICES = (
    "SELECT d.device_id, d.created_at, d.last_seen, d.status, d.fw, d.rssi, d.labels, d.retired_at, "
    "d.dropped_total, d.dropped_at, " + ", ".join(f"l.{f}" for f in LATEST_FIELDS) + " "
    "FROM devices AS d LEFT JOIN latest_reading AS l USING (device_id) ORDER BY d.device_id"
)


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
    mqtt_tls: bool = False
    #: The CA that signed the broker's certificate (a copy flashed to the board as its trust anchor).
    mqtt_ca_file: str | None = None
    environment: str = "local"

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


def config_url(settings: Settings) -> str:
    from iotctl.environments import active

    return active(settings).config_url


def validate_device_id(device_id: str) -> str:
    if not contract.valid_device_id(device_id):
        raise InvalidInput(f"Device id `{device_id}` is invalid; use 1-64 characters from A-Z, a-z, 0-9, `_` and `-`.")
    return device_id


def device_file(settings: Settings, device_id: str) -> Path:
    """Where the active environment keeps ``device_id``'s credentials."""
    from iotctl.environments import active

    return active(settings).devices_dir / f"{validate_device_id(device_id)}.json"


class Provisioning:
    """One connection to the environment's broker (as its admin) and database, for any number of devices."""

    def __init__(self, settings: Settings):
        from iotctl.environments import active

        self.settings = settings
        self.env = active(settings)
        self._db = self.env.db_endpoint()  # fails early for an environment whose database iotctl cannot reach
        self.broker = None
        self.conn = None

    def __enter__(self) -> Provisioning:
        from iotctl.db.connect import connect

        self.conn = connect(self._db)
        try:
            self.broker = self.env.identities().__enter__()
        except BaseException:
            self.conn.close()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        try:
            self.broker.close()
        finally:
            self.conn.close()

    # -- provisioning
    @contextmanager
    def _device_lock(self, device_id: str) -> Iterator[None]:
        """Serialize work on one device id across processes (a session-level advisory lock), so two provisions
        of the same device cannot interleave their broker password, token and credentials file."""
        self.conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", ("iotctl.device:" + device_id,))
        try:
            yield
        finally:
            self.conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", ("iotctl.device:" + device_id,))

    def provision(self, device_id: str, *, rotate: bool = False, labels: dict | None = None):
        """Create ``device_id``'s identity everywhere, in one go. Returns (credentials, path of the 0600 file)."""
        validate_device_id(device_id)
        with self._device_lock(device_id):
            return self._provision(device_id, rotate, labels)

    def _provision(self, device_id: str, rotate: bool, labels: dict | None):
        from iots6_platform.core.devconfig.tokens import issue_device_token

        conn, broker, env = self.conn, self.broker, self.env
        state = broker.state(device_id)
        row = conn.execute("SELECT retired_at IS NULL FROM devices WHERE device_id = %s", (device_id,)).fetchone()
        if state == ACTIVE and row and row[0] and not rotate:
            raise InvalidInput(
                f"Device `{device_id}` is already provisioned; pass --rotate to issue new credentials "
                "(the old ones stop working)."
            )
        path = env.devices_dir / f"{device_id}.json"
        staged = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new")
        password = generate_password()
        broker_changed = False
        try:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO devices (device_id, labels) VALUES (%s, %s::jsonb) "
                    "ON CONFLICT (device_id) DO UPDATE SET retired_at = NULL, "
                    "labels = CASE WHEN %s THEN EXCLUDED.labels ELSE devices.labels END",
                    (device_id, json.dumps(labels or {}), labels is not None),
                )
                token = issue_device_token(conn, device_id, rotate=True)
                broker_changed = True  # from here on a failure may have reached the broker
                broker.provision(device_id, password)
                ca = env.ca_file if env.broker.tls else None
                creds = DeviceCredentials(
                    device_id=device_id,
                    mqtt_host=env.broker.host,
                    mqtt_port=env.broker.port,
                    mqtt_username=device_id,
                    mqtt_password=password,
                    topic_base=env.topic_base,
                    config_url=env.config_url,
                    config_token=token,
                    provisioned_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    mqtt_tls=env.broker.tls,
                    mqtt_ca_file=str(ca) if ca else None,
                    environment=env.name,
                )
                write_secret(staged, json.dumps(asdict(creds), indent=2) + "\n")
        except BaseException:
            staged.unlink(missing_ok=True)
            if broker_changed:
                self._undo(device_id, state)
            raise
        os.replace(staged, path)
        return creds, path

    def _undo(self, device_id: str, state_before: str | None) -> None:
        """Best effort, back to where the broker was: a client made now is deleted, a retired one disabled again.
        A rotation that failed is left alone: the device may still hold a working password, and the error says to
        run it again."""
        try:
            if state_before is None:
                self.broker.remove(device_id)
            elif state_before != ACTIVE:
                self.broker.retire(device_id)
        except Exception:  # noqa: BLE001 - the original error is the one to report; a re-run repairs this
            pass

    def retire(self, device_id: str) -> None:
        """Disable the broker client (disconnecting it at once), delete the config token, keep the readings and
        mark the registry row retired."""
        validate_device_id(device_id)
        with self._device_lock(device_id):
            self._retire(device_id)

    def _retire(self, device_id: str) -> None:
        conn, broker = self.conn, self.broker
        state = broker.state(device_id)
        with conn.transaction():
            found = conn.execute(
                "UPDATE devices SET retired_at = now() WHERE device_id = %s AND retired_at IS NULL RETURNING 1",
                (device_id,),
            ).fetchone()
            if not found and state != ACTIVE:
                raise NotFound(
                    f"Device `{device_id}` is not provisioned in {self.env.label}; `iotctl device fleet` shows the "
                    "fleet."
                )
            conn.execute("DELETE FROM device_tokens WHERE device_id = %s", (device_id,))
            if state is not None:
                broker.retire(device_id)
        (self.env.devices_dir / f"{device_id}.json").unlink(missing_ok=True)

    def list(self) -> list[dict]:
        states = self.broker.devices()
        rows = self.conn.execute(LIST_DEVICES).fetchall()
        result = []
        for row in rows:
            device_id, created, last_seen, status, fw, rssi, labels, retired, dropped, dropped_at = row[:10]
            latest = dict(zip(LATEST_FIELDS, row[10:], strict=True)) if row[10] is not None else None
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
                    "broker_account": states.get(device_id) == ACTIVE,
                    "latest": latest,
                }
            )
        return result


@contextmanager
def provisioning(settings: Settings) -> Iterator[Provisioning]:
    with Provisioning(settings) as session:
        yield session


def provision(settings: Settings, device_id: str, *, rotate: bool = False, labels: dict | None = None):
    """Provision one device in the active environment. Returns (credentials, path of the 0600 file)."""
    validate_device_id(device_id)
    with provisioning(settings) as session:
        return session.provision(device_id, rotate=rotate, labels=labels)


def load_credentials(settings: Settings, device_id: str) -> DeviceCredentials:
    path = device_file(settings, device_id)
    known = {f.name for f in fields(DeviceCredentials)}
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(
            f"No credentials for device `{device_id}` in `{path.parent}`; run `iotctl device provision {device_id}`."
        ) from None
    except ValueError:
        raise InvalidInput(
            f"Credentials file `{path}` is not valid JSON; provision the device again (--rotate)."
        ) from None
    return DeviceCredentials(**{k: v for k, v in data.items() if k in known})


def ensure_provisioned(settings: Settings, device_id: str) -> DeviceCredentials:
    """Credentials of ``device_id``, provisioning it first when it has none."""
    try:
        return load_credentials(settings, device_id)
    except NotFound:
        return provision(settings, device_id)[0]


def list_devices(settings: Settings) -> list[dict]:
    """Registered devices with their registry state and whether the broker has an enabled client for them.

    ``dropped``: readings the device reported dropping before it could send them (full offline buffer), summed
    over its stored readings by the ingest; ``dropped_at``: the time of the newest reading that reported any.
    ``latest``: the device's newest stored reading (``LATEST_FIELDS``), or None before its first.
    """
    with provisioning(settings) as session:
        return session.list()


def retire(settings: Settings, device_id: str) -> None:
    validate_device_id(device_id)
    with provisioning(settings) as session:
        session.retire(device_id)
