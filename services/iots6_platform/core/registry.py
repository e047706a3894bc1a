"""The device registry: a device's row in ``devices`` and its config token, written in one transaction.

ONE implementation for both ways a device is registered:

- ``iotctl device provision`` on the local stack, which reaches the database directly (``iotctl.devices``), and
- the config server's admin API (``PUT /v1/devices/{id}``, ``POST /v1/devices/{id}/token``,
  ``DELETE /v1/devices/{id}``), which ``iotctl device provision|retire --env <vm|aks>`` drives over HTTPS.

The broker identity is not made here: the operator's iotctl makes it over MQTT (dynamic security) on either path.

Every write takes a per-device transaction-level advisory lock, the same key the local path holds for a whole
provisioning (:func:`device_lock`), so two writers of one device never interleave.  Functions take a psycopg
connection and open their own transaction (a savepoint when the caller already has one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from iots6_platform.core import contract
from iots6_platform.core.devconfig.tokens import hash_token, new_token

#: Labels of the registry row (dashboards group by them): a flat map of short strings.
MAX_LABELS = 16
LABEL_KEY_MAX = 32
LABEL_VALUE_MAX = 128

SQL_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
SQL_SESSION_LOCK = "SELECT pg_advisory_lock(hashtextextended(%s, 0))"
SQL_SESSION_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended(%s, 0))"
_COLUMNS = """
d.device_id, d.labels, d.created_at, d.retired_at, d.last_seen, d.status, d.fw, d.rssi,
t.device_id IS NOT NULL AS has_token
"""
SQL_GET = f"SELECT {_COLUMNS} FROM devices d LEFT JOIN device_tokens t USING (device_id) WHERE d.device_id = %s"
SQL_UPSERT = """
INSERT INTO devices (device_id, labels) VALUES (%(device_id)s, %(labels)s::jsonb)
ON CONFLICT (device_id) DO UPDATE SET retired_at = NULL,
    labels = CASE WHEN %(set_labels)s THEN EXCLUDED.labels ELSE devices.labels END
"""
SQL_HAS_TOKEN = "SELECT 1 FROM device_tokens WHERE device_id = %s"
SQL_SET_TOKEN = """
INSERT INTO device_tokens (device_id, token_hash) VALUES (%(device_id)s, %(hash)s)
ON CONFLICT (device_id) DO UPDATE SET token_hash = EXCLUDED.token_hash, rotated_at = now()
"""
SQL_RETIRE = "UPDATE devices SET retired_at = now() WHERE device_id = %s AND retired_at IS NULL RETURNING 1"
SQL_DELETE_TOKEN = "DELETE FROM device_tokens WHERE device_id = %s"


def lock_key(device_id: str) -> str:
    return "iots6.device:" + device_id


@dataclass(frozen=True)
class Device:
    """A registry row as the API shows it (``has_token``: it holds a config token; a retired device never does)."""

    device_id: str
    labels: dict[str, Any]
    created_at: datetime
    retired_at: datetime | None
    last_seen: datetime | None
    status: str | None
    fw: str | None
    rssi: int | None
    has_token: bool

    @property
    def active(self) -> bool:
        return self.retired_at is None

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "device_id": self.device_id,
            "labels": self.labels,
            "created_at": iso(self.created_at),
            "retired_at": iso(self.retired_at),
            "last_seen": iso(self.last_seen),
            "status": self.status,
            "fw": self.fw,
            "rssi": self.rssi,
            "has_token": self.has_token,
        }


@dataclass(frozen=True)
class Registration:
    """What :func:`register` did: the row after it, whether it was new, and the config token when one was issued
    (shown once; only its hash is stored)."""

    device: Device
    created: bool
    reactivated: bool
    token: str | None


def check_labels(labels: Any) -> str | None:
    """None when ``labels`` is a valid label map, else one sentence saying what is wrong."""
    if not isinstance(labels, dict):
        return "labels must be a JSON object of strings"
    if len(labels) > MAX_LABELS:
        return f"at most {MAX_LABELS} labels"
    for key, value in labels.items():
        if not key or len(key) > LABEL_KEY_MAX:
            return f"label names are 1-{LABEL_KEY_MAX} characters"
        if not isinstance(value, str) or len(value) > LABEL_VALUE_MAX:
            return f"label `{key}` must be a string of at most {LABEL_VALUE_MAX} characters"
    return None


@contextmanager
def device_lock(conn, device_id: str) -> Iterator[None]:
    """Serialize work on one device id across processes for longer than a transaction (a session-level advisory
    lock on the key every registry write takes): the local path holds it while it also makes the broker identity
    and the credentials file."""
    conn.execute(SQL_SESSION_LOCK, (lock_key(device_id),))
    try:
        yield
    finally:
        conn.execute(SQL_SESSION_UNLOCK, (lock_key(device_id),))


def get(conn, device_id: str) -> Device | None:
    """The registry row of ``device_id``, or None when it was never registered."""
    if not contract.valid_device_id(device_id):
        return None
    row = conn.execute(SQL_GET, (device_id,)).fetchone()
    return None if row is None else Device(*row)


def _set_token(conn, device_id: str) -> str:
    token = new_token()
    conn.execute(SQL_SET_TOKEN, {"device_id": device_id, "hash": hash_token(token)})
    return token


def register(conn, device_id: str, labels: dict[str, Any] | None = None, *, new_token_always: bool) -> Registration:
    """Register ``device_id`` (or bring a retired one back) and make sure it has a config token.

    ``labels`` replace the row's labels when given, else they are kept.  ``new_token_always``: issue a new token
    even when the device has one (the old one stops working); otherwise a token is issued only when the device has
    none (new, or retired, which deletes its token), so repeating the same call changes nothing.
    Raises ValueError for an invalid id or labels (callers validate first and say so in their own words).
    """
    if not contract.valid_device_id(device_id):
        raise ValueError(f"invalid device id {device_id!r}")
    if labels is not None and check_labels(labels) is not None:
        raise ValueError(check_labels(labels))
    with conn.transaction():
        conn.execute(SQL_LOCK, (lock_key(device_id),))
        before = get(conn, device_id)
        conn.execute(
            SQL_UPSERT,
            {"device_id": device_id, "labels": json.dumps(labels or {}), "set_labels": labels is not None},
        )
        token = None
        if new_token_always or conn.execute(SQL_HAS_TOKEN, (device_id,)).fetchone() is None:
            token = _set_token(conn, device_id)
        after = get(conn, device_id)
    return Registration(after, before is None, before is not None and not before.active, token)


def rotate_token(conn, device_id: str) -> str | None:
    """A new config token for an active device (the old one stops working at once); None when the device is not
    registered or retired."""
    with conn.transaction():
        conn.execute(SQL_LOCK, (lock_key(device_id),))
        found = get(conn, device_id)
        if found is None or not found.active:
            return None
        return _set_token(conn, device_id)


def retire(conn, device_id: str) -> tuple[Device, bool] | None:
    """Mark ``device_id`` retired and delete its config token; readings stay. Returns (row after, whether it was
    active before), or None when it was never registered.  Retiring a retired device changes nothing."""
    with conn.transaction():
        conn.execute(SQL_LOCK, (lock_key(device_id),))
        if get(conn, device_id) is None:
            return None
        was_active = conn.execute(SQL_RETIRE, (device_id,)).fetchone() is not None
        conn.execute(SQL_DELETE_TOKEN, (device_id,))
        after = get(conn, device_id)
    return after, was_active


SQL_FLEET = """
SELECT device_id, created_at, last_seen, status, fw, rssi, labels, retired_at, dropped_total, dropped_at
FROM devices ORDER BY device_id
"""
#: The keys of a :func:`fleet` row, in column order.
FLEET_KEYS = (
    "device_id",
    "created_at",
    "last_seen",
    "status",
    "fw",
    "rssi",
    "labels",
    "retired_at",
    "dropped",
    "dropped_at",
)
#: Those holding a timestamp (ISO 8601 over the API).
FLEET_TIMES = ("created_at", "last_seen", "retired_at", "dropped_at")


def fleet(conn) -> list[dict[str, Any]]:
    """Every registered device (retired ones too) with what the ingest last recorded of it: last seen, status,
    firmware, RSSI, and ``dropped`` (readings the device reported dropping before it could send them, summed by
    the ingest; ``dropped_at``: the newest reading that reported any)."""
    return [dict(zip(FLEET_KEYS, row, strict=True)) for row in conn.execute(SQL_FLEET).fetchall()]
