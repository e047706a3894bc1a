"""The ingest's binary COPY (``store.COPY_TYPES``) against a real, migrated PostgreSQL: its types are the columns'
types, every value comes back exactly as written, and a value PostgreSQL refuses costs only its own row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from iots6_platform.core import contract
from iots6_platform.ingest.store import _COLUMNS, COPY_TYPES, Batch, BatchReading, Store

NOW = datetime.now(UTC).replace(microsecond=123456)


def _reading(device_id: str, seq: int, **values) -> contract.Reading:
    fields = dict.fromkeys(contract.VALUE_FIELDS)
    fields.update(values)
    return contract.Reading(NOW - timedelta(seconds=seq % 1000), device_id, "telemetry", seq, **fields)


def _store(database) -> Store:
    store = Store(database.url, database.password)
    store.connect()
    return store


def _provision(database, *device_ids: str) -> None:
    with database.connect(autocommit=True) as conn:
        for device_id in device_ids:
            conn.execute("INSERT INTO devices (device_id) VALUES (%s)", (device_id,))


def _stored(database, device_id: str) -> list[tuple]:
    columns = ", ".join(_COLUMNS)
    with database.connect() as conn:
        return conn.execute(
            f"SELECT {columns} FROM sensor_data WHERE device_id = %s ORDER BY seq", (device_id,)
        ).fetchall()


def test_copy_types_are_the_columns_types(database):
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT a.attname, t.typname FROM pg_attribute AS a JOIN pg_type AS t ON t.oid = a.atttypid "
            "WHERE a.attrelid = 'sensor_data'::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        ).fetchall()
    types = dict(rows)
    assert [types[column] for column in _COLUMNS] == list(COPY_TYPES)


def test_every_value_comes_back_exactly(database):
    _provision(database, "copy-1")
    readings = [
        _reading("copy-1", 1, temperature=21.5, humidity=40.0, pressure=1009.25, motion=True, switch=False),
        _reading("copy-1", 2, temperature=-0.0, humidity=0.1 + 0.2, pressure=300.0, rssi=-127, uptime_s=2**31 - 1),
        _reading("copy-1", 3, temperature=99.99999999999999, humidity=1e-05, rssi=0, uptime_s=0, dropped=2**31 - 1),
        _reading("copy-1", 2**63 - 1, fw="1.2.0\t\\\n\r é ✓", motion=False, switch=True, dropped=0),
        _reading("copy-1", 5),  # every value NULL
    ]
    store = _store(database)
    try:
        result = store.write(Batch([BatchReading(r, NOW, "t", b"", ()) for r in readings]))
    finally:
        store.reset()
    assert (result.stored, result.duplicates, result.dead_letters) == (5, 0, [])
    expected = sorted((*r, NOW) for r in readings)
    assert _stored(database, "copy-1") == sorted(expected, key=lambda row: row[3])


@pytest.mark.parametrize("fw", ["nul\x00byte", "lone \ud800 surrogate"], ids=["nul", "surrogate"])
def test_a_value_postgresql_refuses_costs_only_its_row(database, fw):
    _provision(database, "copy-2")
    readings = [_reading("copy-2", 1, temperature=20.0), _reading("copy-2", 2, fw=fw), _reading("copy-2", 3)]
    store = _store(database)
    try:
        result = store.write(Batch([BatchReading(r, NOW, "iots6/copy-2/telemetry", b"{}", ()) for r in readings]))
    finally:
        store.reset()
    assert result.stored == 2
    assert [(d.reason, d.device_id) for d in result.dead_letters] == [("db_rejected", "copy-2")]
    assert [row[3] for row in _stored(database, "copy-2")] == [1, 3]
