"""``latest_reading`` (migration 0007) against a real PostgreSQL: the ingest keeps each device's newest reading in
the transaction that stores it; out-of-order and redelivered readings never move it back; a failed batch leaves it
as it was; the migration back-fills it from the readings already stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from iots6_platform.core import contract
from iots6_platform.core.contract import Reading
from iots6_platform.core.db import migrate
from iots6_platform.ingest.store import Batch, BatchReading, DeadLetter, Store

from .conftest import count_rows, wait_until

BASE = contract.DEFAULT_TOPIC_BASE
COLUMNS = "time, kind, seq, temperature, humidity, pressure, motion, switch, rssi, uptime_s, fw, dropped"
#: The newest row of sensor_data per device, read the old way (what latest_reading must always equal).
NEWEST_STORED = (
    f"SELECT d.device_id, s.* FROM devices AS d CROSS JOIN LATERAL (SELECT {COLUMNS} FROM sensor_data AS r "
    "WHERE r.device_id = d.device_id ORDER BY r.time DESC, r.kind DESC, r.seq DESC LIMIT 1) AS s ORDER BY 1"
)
LATEST = f"SELECT device_id, {COLUMNS} FROM latest_reading ORDER BY 1"
T0 = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)


def reading(device_id: str, seconds: float, seq: int, temperature: float = 20.0, kind: str = "telemetry"):
    """One batch item as the ingest's reader builds it."""
    r = Reading(T0 + timedelta(seconds=seconds), device_id, kind, seq, temperature, 40.0, 1010.0, False, True, -60,
                seq * 10, "1.0.0", None)  # fmt: skip
    return BatchReading(r, datetime.now(UTC), contract.topic(BASE, device_id, contract.TELEMETRY), b"{}", ())


def latest(conn) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in conn.execute(LATEST).fetchall()}


def newest_stored(conn) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in conn.execute(NEWEST_STORED).fetchall()}


@pytest.fixture
def store(database):
    with database.connect(autocommit=True) as conn:
        conn.execute("INSERT INTO devices (device_id) VALUES ('lr-a'), ('lr-b'), ('lr-silent')")
    s = Store(database.url, database.password)
    yield s
    s.reset()


def test_latest_follows_the_newest_stored_reading_and_never_moves_back(store, database):
    # One batch, newest first: the batch's newest per device wins, whatever the order inside the batch.
    result = store.write(Batch([reading("lr-a", 10, 2, 21.0), reading("lr-a", 0, 1), reading("lr-b", 0, 1)]))
    assert (result.stored, result.duplicates) == (3, 0)
    with database.connect() as conn:
        first = latest(conn)
        assert set(first) == {"lr-a", "lr-b"}  # a device that never sent a reading has no row
        assert first["lr-a"][:4] == (T0 + timedelta(seconds=10), "telemetry", 2, 21.0)
        assert first == newest_stored(conn)

    # Late readings (a device's offline buffer flushed after newer ones arrived) are stored, the latest stays.
    result = store.write(Batch([reading("lr-a", -60, 0, 5.0), reading("lr-b", -1, 0, 5.0)]))
    assert result.stored == 2
    with database.connect() as conn:
        assert latest(conn) == first == newest_stored(conn)

    # A redelivery (same key; even with other values) is absorbed: nothing stored twice, the latest unchanged.
    result = store.write(Batch([reading("lr-a", 10, 2, 99.0), reading("lr-b", 0, 1, 99.0)]))
    assert (result.stored, result.duplicates) == (0, 2)
    with database.connect() as conn:
        assert latest(conn) == first
        assert count_rows(database, "SELECT count(*) FROM sensor_data") == 5

    # Same time, higher seq: newer by the key order (time, kind, seq).
    store.write(Batch([reading("lr-b", 0, 2, 22.0)]))
    with database.connect() as conn:
        assert latest(conn)["lr-b"][:4] == (T0, "telemetry", 2, 22.0)
        assert latest(conn) == newest_stored(conn)


def test_a_batch_that_fails_leaves_latest_and_readings_as_they_were(store, database):
    store.write(Batch([reading("lr-a", 0, 1)]))
    with database.connect(autocommit=True) as conn:
        before = latest(conn)
        # An operator's rule refuses the batch's dead letter: the whole transaction fails, both times it is tried.
        conn.execute("ALTER TABLE dead_letter ADD CONSTRAINT no_letters CHECK (false)")
    letter = DeadLetter(datetime.now(UTC), f"{BASE}/x/telemetry", b"x", "not_json", "not JSON", None)
    with pytest.raises(psycopg.errors.CheckViolation):
        store.write(Batch([reading("lr-a", 10, 2, 30.0), reading("lr-b", 0, 1)], [letter]))
    store.reset()
    with database.connect() as conn:
        assert latest(conn) == before
        assert count_rows(database, "SELECT count(*) FROM sensor_data") == 1


def test_a_row_the_database_refuses_does_not_become_the_latest(store, database):
    with database.connect(autocommit=True) as conn:
        conn.execute("ALTER TABLE sensor_data ADD CONSTRAINT site_max_temp CHECK (temperature < 100)")
    result = store.write(Batch([reading("lr-a", 10, 2, 110.0), reading("lr-a", 0, 1, 20.0)]))
    assert result.stored == 1 and [d.reason for d in result.dead_letters] == ["db_rejected"]
    with database.connect() as conn:
        assert latest(conn)["lr-a"][:4] == (T0, "telemetry", 1, 20.0)
        assert latest(conn) == newest_stored(conn)


def test_the_ingest_keeps_latest_through_out_of_order_and_redelivered_messages(ingest, provision, database, device_id):
    device = provision(device_id)
    topic = contract.topic(BASE, device_id, contract.TELEMETRY)
    newest = Reading(T0 + timedelta(seconds=30), device_id, "telemetry", 3, 23.5, 41.0, 1012.0, False, True, -58,
                     300, "1.0.0")  # fmt: skip
    older = newest._replace(time=T0, seq=1, temperature=19.0)
    mids = [device.publish(topic, contract.make_payload(newest))]
    device.wait_acked(mids)
    wait_until(lambda: count_rows(database, "SELECT count(*) FROM latest_reading") == 1, 10, what="latest row")
    # The older one afterwards (in a batch of its own), then the newest twice more (a broker redelivery looks like
    # this to the ingest).
    device.wait_acked([device.publish(topic, contract.make_payload(older))])
    wait_until(lambda: count_rows(database, "SELECT count(*) FROM sensor_data") == 2, 10, what="older stored")
    latest_seq = "SELECT seq FROM latest_reading WHERE device_id = %s"
    assert count_rows(database, latest_seq, (device_id,)) == 3
    device.wait_acked([device.publish(topic, contract.make_payload(newest)) for _ in range(2)])
    wait_until(lambda: ingest.metric("iots6_ingest_duplicates_total") >= 2, 10, what="duplicates counted")
    with database.connect() as conn:
        assert count_rows(database, "SELECT count(*) FROM sensor_data WHERE device_id = %s", (device_id,)) == 2
        row = conn.execute(
            "SELECT time, seq, temperature, rssi, fw, received_at >= time FROM latest_reading WHERE device_id = %s",
            (device_id,),
        ).fetchone()
        assert row == (newest.time, 3, 23.5, -58, "1.0.0", True)
        assert latest(conn) == newest_stored(conn)


def test_migration_back_fills_from_the_readings_already_stored(pg, tmp_path):
    """A database at 0006 with readings gets each device's newest one; a second refresh changes nothing."""
    before = tmp_path / "migrations"
    before.mkdir()
    for m in migrate.discover("postgres"):
        if m.version < 7:
            (before / m.path.name).write_text(m.sql)
    with psycopg.connect(pg.server.superuser_conninfo(), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS latest_backfill WITH (FORCE)")
        admin.execute("CREATE DATABASE latest_backfill")
    with psycopg.connect(pg.server.superuser_conninfo("latest_backfill"), autocommit=True) as conn:
        migrate.migrate(conn, directory=before)
        assert conn.execute("SELECT to_regclass('latest_reading')").fetchone()[0] is None
        conn.execute("INSERT INTO devices (device_id) VALUES ('bf-a'), ('bf-b'), ('bf-silent')")
        # bf-a: three days of readings, the newest not the last inserted; bf-b: a telemetry and an event together.
        for seq, days in ((1, 3), (3, 0), (2, 1)):
            conn.execute(
                "INSERT INTO sensor_data (time, device_id, seq, temperature) VALUES (%s, 'bf-a', %s, %s)",
                (T0 - timedelta(days=days), seq, 20.0 + seq),
            )
        conn.execute(
            "INSERT INTO sensor_data (time, device_id, kind, seq, motion) VALUES (%s, 'bf-b', 'telemetry', 1, false),"
            " (%s, 'bf-b', 'motion', 2, true)",
            (T0, T0),
        )
        migrate.migrate(conn)
        got = latest(conn)
        assert got == newest_stored(conn)
        assert set(got) == {"bf-a", "bf-b"}
        assert got["bf-a"][:4] == (T0, "telemetry", 3, 23.0)
        assert got["bf-b"][1:3] == ("telemetry", 1)  # equal times: the key order (time, kind, seq) decides
        assert conn.execute("SELECT iots6_refresh_latest_reading()").fetchone()[0] == 0
    with psycopg.connect(pg.server.superuser_conninfo(), autocommit=True) as admin:
        admin.execute("DROP DATABASE latest_backfill WITH (FORCE)")


def test_refresh_catches_up_after_a_bulk_load_without_moving_back(store, database):
    """Rows COPied around the ingest (a restore) are picked up by iots6_refresh_latest_reading()."""
    store.write(Batch([reading("lr-a", 100, 5, 25.0)]))
    with database.connect(autocommit=True) as conn:
        with conn.cursor().copy("COPY sensor_data (time, device_id, seq, temperature) FROM STDIN") as copy:
            copy.write_row((T0 + timedelta(seconds=50), "lr-a", 4, 1.0))  # older than the latest: ignored
            copy.write_row((T0, "lr-b", 1, 2.0))  # lr-b had none
        assert conn.execute("SELECT iots6_refresh_latest_reading()").fetchone()[0] == 1
        assert latest(conn) == newest_stored(conn)
        assert latest(conn)["lr-a"][2:4] == (5, 25.0)
