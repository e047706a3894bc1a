"""The config server's SQL (named constants) and the read/write operations on a psycopg connection.

Writes lock the changed document's row, compare the caller's expected version (If-Match), record the change in
``config_history`` and bump the version, all in one transaction.  A write that changes nothing changes no
version and records no history.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from iots6_platform.core import registry
from iots6_platform.core.devconfig import schema

SQL_PING = "SELECT 1"
SQL_FLEET = "SELECT config, version, updated_at, updated_by FROM fleet_config"
SQL_FLEET_LOCK = "SELECT config, version FROM fleet_config FOR UPDATE"
SQL_FLEET_UPDATE = """
UPDATE fleet_config SET config = %(doc)s, version = %(version)s, updated_at = now(), updated_by = %(actor)s
"""
SQL_DEVICE = """
SELECT COALESCE(c.overrides, '{}'::jsonb), COALESCE(c.version, 0), c.updated_at, c.updated_by
FROM devices d LEFT JOIN device_config c USING (device_id)
WHERE d.device_id = %s
"""
SQL_DEVICE_ENSURE = "INSERT INTO device_config (device_id) VALUES (%s) ON CONFLICT (device_id) DO NOTHING"
SQL_DEVICE_LOCK = "SELECT overrides, version FROM device_config WHERE device_id = %s FOR UPDATE"
SQL_DEVICE_UPDATE = """
UPDATE device_config
SET overrides = %(doc)s, version = %(version)s, updated_at = now(), updated_by = %(actor)s
WHERE device_id = %(device_id)s
"""
SQL_DEVICE_EXISTS = "SELECT 1 FROM devices WHERE device_id = %s"
SQL_DEVICE_RETIRED = "SELECT retired_at IS NOT NULL FROM devices WHERE device_id = %s"
SQL_HISTORY_INSERT = """
INSERT INTO config_history (device_id, version, actor, change)
VALUES (%(device_id)s, %(version)s, %(actor)s, %(change)s)
"""
SQL_HISTORY_DEVICE = """
SELECT id, version, actor, changed_at, change FROM config_history
WHERE device_id = %s ORDER BY id DESC LIMIT %s
"""
SQL_HISTORY_FLEET = """
SELECT id, version, actor, changed_at, change FROM config_history
WHERE device_id IS NULL ORDER BY id DESC LIMIT %s
"""
SQL_DEVICES = """
SELECT d.device_id, COALESCE(c.version, 0), d.retired_at IS NOT NULL, t.device_id IS NOT NULL
FROM devices d
LEFT JOIN device_config c USING (device_id)
LEFT JOIN device_tokens t USING (device_id)
ORDER BY d.device_id
"""
SQL_ACTIVE_DEVICES = """
SELECT d.device_id, COALESCE(c.overrides, '{}'::jsonb), COALESCE(c.version, 0)
FROM devices d LEFT JOIN device_config c USING (device_id)
WHERE d.retired_at IS NULL
ORDER BY d.device_id
"""


class VersionMismatch(Exception):
    def __init__(self, current: int, expected: int):
        super().__init__(f"version is {current}, If-Match expected {expected}")
        self.current, self.expected = current, expected


@dataclass(frozen=True)
class Effective:
    """What a device fetches: the complete configuration plus ``device_id`` and ``version``, and its ETag."""

    body: dict[str, Any]
    etag: str  # without quotes; the ETag header is this in double quotes

    @property
    def device_id(self) -> str:
        return self.body["device_id"]

    @property
    def version(self) -> int:
        return self.body["version"]


def effective(device_id: str, fleet: dict, fleet_version: int, overrides: dict, device_version: int) -> Effective:
    body = {
        **schema.effective(fleet, overrides),
        "device_id": device_id,
        "version": fleet_version + device_version,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return Effective(body, hashlib.sha256(canonical.encode()).hexdigest()[:32])


@dataclass(frozen=True)
class Document:
    """A stored document (fleet defaults or a device's overrides): sparse, versioned, stamped by its last write."""

    doc: dict[str, Any]
    version: int
    updated_at: datetime | None = None
    updated_by: str | None = None


@dataclass(frozen=True)
class Written:
    """The outcome of a write: the document's version after it, and what changed (empty: nothing, no new version)."""

    version: int
    change: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded change (``config_history``)."""

    id: int
    version: int
    actor: str
    changed_at: datetime
    change: dict[str, dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "changed_at": self.changed_at.isoformat()}


@dataclass(frozen=True)
class DeviceSummary:
    """A registered device as the admin list shows it: configuration versions and its registry row."""

    device_id: str
    version: int  # effective: fleet version + overrides version
    overrides_version: int
    retired: bool
    has_token: bool
    #: :func:`iots6_platform.core.registry.fleet`'s row: labels, created/retired/last seen, status, fw, rssi, dropped
    registry: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        row = {
            key: value.isoformat() if key in registry.FLEET_TIMES and value else value
            for key, value in self.registry.items()
        }
        return {
            **row,
            "device_id": self.device_id,
            "version": self.version,
            "overrides_version": self.overrides_version,
            "retired": self.retired,
            "has_token": self.has_token,
        }


def fleet(conn) -> Document:
    doc, version, updated_at, updated_by = conn.execute(SQL_FLEET).fetchone()
    return Document(doc, version, updated_at, updated_by)


def device(conn, device_id: str) -> Document | None:
    """The device's overrides, or None when the device is not registered."""
    row = conn.execute(SQL_DEVICE, (device_id,)).fetchone()
    return None if row is None else Document(*row)


def retired(conn, device_id: str) -> bool:
    row = conn.execute(SQL_DEVICE_RETIRED, (device_id,)).fetchone()
    return bool(row and row[0])


def device_effective(conn, device_id: str) -> Effective | None:
    # One snapshot for both documents, so the version and the content always agree.
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        own = device(conn, device_id)
        if own is None:
            return None
        defaults = fleet(conn)
    return effective(device_id, defaults.doc, defaults.version, own.doc, own.version)


def _record(conn, device_id: str | None, version: int, actor: str, change: dict) -> None:
    conn.execute(
        SQL_HISTORY_INSERT,
        {"device_id": device_id, "version": version, "actor": actor, "change": Jsonb(change)},
    )


def write_fleet(conn, new_doc: dict, actor: str, expected: int | None, patch: bool = False) -> Written:
    """Replace (or merge-patch) the fleet defaults."""
    with conn.transaction():
        old, version = conn.execute(SQL_FLEET_LOCK).fetchone()
        if expected is not None and expected != version:
            raise VersionMismatch(version, expected)
        doc = schema.merge_patch(old, new_doc) if patch else new_doc
        schema.validate(doc)
        schema.validate(schema.effective(doc, {}), partial=False)
        change = schema.diff(old, doc)
        if not change:
            return Written(version, change)
        version += 1
        conn.execute(SQL_FLEET_UPDATE, {"doc": Jsonb(doc), "version": version, "actor": actor})
        _record(conn, None, version, actor, change)
    return Written(version, change)


def write_device(
    conn, device_id: str, new_doc: dict, actor: str, expected: int | None, patch: bool = False
) -> Written | None:
    """Replace (or merge-patch) a device's overrides; None when the device is not registered."""
    with conn.transaction():
        if conn.execute(SQL_DEVICE_EXISTS, (device_id,)).fetchone() is None:
            return None
        conn.execute(SQL_DEVICE_ENSURE, (device_id,))
        old, version = conn.execute(SQL_DEVICE_LOCK, (device_id,)).fetchone()
        if expected is not None and expected != version:
            raise VersionMismatch(version, expected)
        doc = schema.merge_patch(old, new_doc) if patch else new_doc
        schema.validate(doc)
        schema.validate(schema.effective(fleet(conn).doc, doc), partial=False)  # e.g. too many labels in total
        change = schema.diff(old, doc)
        if not change:
            return Written(version, change)
        version += 1
        conn.execute(SQL_DEVICE_UPDATE, {"doc": Jsonb(doc), "version": version, "actor": actor, "device_id": device_id})
        _record(conn, device_id, version, actor, change)
    return Written(version, change)


def history(conn, device_id: str | None, limit: int) -> list[HistoryEntry]:
    if device_id is None:
        rows = conn.execute(SQL_HISTORY_FLEET, (limit,)).fetchall()
    else:
        rows = conn.execute(SQL_HISTORY_DEVICE, (device_id, limit)).fetchall()
    return [HistoryEntry(*row) for row in rows]


def devices(conn) -> list[DeviceSummary]:
    """Every device's configuration versions and, from the same snapshot, its registry row
    (:func:`iots6_platform.core.registry.fleet`: labels, last seen, status, ...)."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        fleet_version = fleet(conn).version
        rows = conn.execute(SQL_DEVICES).fetchall()
        found = {row["device_id"]: row for row in registry.fleet(conn)}
    return [
        DeviceSummary(
            device_id, fleet_version + overrides_version, overrides_version, retired, has_token, found[device_id]
        )
        for device_id, overrides_version, retired, has_token in rows
    ]


def active_effective(conn) -> list[Effective]:
    """The effective configuration of every active device (for the notices after a fleet change)."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        defaults = fleet(conn)
        rows = conn.execute(SQL_ACTIVE_DEVICES).fetchall()
    return [effective(r[0], defaults.doc, defaults.version, r[1], r[2]) for r in rows]
