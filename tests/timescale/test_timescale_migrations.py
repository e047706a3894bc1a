"""The `timescale` and `timescale-apache` editions of the migrations, applied to a real TimescaleDB.

The server is the TEST-ONLY pglite build from ./conftest.py (PostgreSQL 17 + TimescaleDB in WebAssembly):
it proves the edition SQL is accepted and behaves, not how TimescaleDB performs.  It runs no background
workers, so policies are checked by reading ``timescaledb_information.jobs`` and by running each job in the
foreground with ``CALL run_job(id)``.  Writes use INSERT (pglite crashes on COPY); one connection is open at
a time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from iotctl.errors import OperationFailed
from iots6_platform.core.db import migrate

pytestmark = pytest.mark.slow  # two WebAssembly servers to start: ~15-30 s on the shared 2-core machine

ROLLUP_COLUMNS = (
    "bucket, samples, temperature_avg, temperature_min, temperature_max, humidity_avg, "
    "pressure_avg, motion_events, switch_events"
)
INSERT_READING = """
INSERT INTO sensor_data (time, device_id, kind, seq, temperature, humidity, pressure, motion, switch)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT ON CONSTRAINT sensor_data_reading_key DO NOTHING
"""


class Migrated:
    def __init__(self, server, detected: migrate.Edition, edition: migrate.Edition, applied: list):
        self.server, self.detected, self.edition, self.applied = server, detected, edition, applied

    def connect(self) -> psycopg.Connection:
        return self.server.connect()


def _start_and_migrate(factory, edition: str) -> Migrated:
    server = factory()
    with server.connect() as conn:
        detected = migrate.detect_edition(conn)  # before the extension exists: what a fresh server reports
        used, applied = migrate.migrate(conn, edition_override=edition)
    return Migrated(server, detected, used, applied)


@pytest.fixture(scope="module")
def ts(timescale_server_factory) -> Migrated:
    """A fresh pglite+TimescaleDB database migrated with the `timescale` (Timescale License) edition."""
    return _start_and_migrate(timescale_server_factory, "timescale")


@pytest.fixture(scope="module")
def apache(timescale_server_factory) -> Migrated:
    """A fresh pglite+TimescaleDB database migrated with the `timescale-apache` edition."""
    return _start_and_migrate(timescale_server_factory, "timescale-apache")


# --- shared data: what the ingest writes, and what the rollups must say about it ----------------------------


def _base() -> datetime:
    """The start of an hour a day ago: recent enough for every policy to leave it alone."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


def _insert_readings(conn, device: str, base: datetime) -> list[int]:
    """Six deliveries, one a redelivery (same device, time, kind, seq; other values) that must be absorbed."""
    rows = [
        (base + timedelta(seconds=5), device, "telemetry", 1, 20.0, 40.0, 1000.0, None, None),
        (base + timedelta(seconds=35), device, "telemetry", 2, 22.0, 42.0, 1002.0, None, None),
        (base + timedelta(seconds=35), device, "telemetry", 2, 99.0, 99.0, 9999.0, None, None),  # redelivered
        (base + timedelta(seconds=65), device, "telemetry", 3, 30.0, 50.0, 1010.0, None, None),
        (base + timedelta(seconds=125), device, "motion", 4, None, None, None, True, None),
        (base + timedelta(seconds=130), device, "switch", 5, None, None, None, None, True),
    ]
    return [conn.execute(INSERT_READING, row).rowcount for row in rows]


def _expected_1m(base: datetime) -> list[tuple]:
    return [
        (base, 2, 21.0, 20.0, 22.0, 41.0, 1001.0, 0, 0),
        (base + timedelta(minutes=1), 1, 30.0, 30.0, 30.0, 50.0, 1010.0, 0, 0),
        (base + timedelta(minutes=2), 2, None, None, None, None, None, 1, 1),
    ]


def _expected_1h(base: datetime) -> list[tuple]:
    # Averages over the three temperature readings (20, 22, 30): the hour weights each minute by its samples.
    return [(base, 5, 24.0, 20.0, 30.0, 44.0, 1004.0, 1, 1)]


def _rollup(conn, relation: str, device: str) -> list[tuple]:
    assert relation in ("sensor_data_1m", "sensor_data_1h")
    return conn.execute(
        f"SELECT {ROLLUP_COLUMNS} FROM {relation} WHERE device_id = %s ORDER BY bucket", (device,)
    ).fetchall()


def _one(conn, sql: str, params: tuple = ()):
    return conn.execute(sql, params).fetchone()[0]


def _insert(conn, time: datetime, device: str, seq: int, kind: str = "telemetry", temperature=None, motion=None) -> int:
    """One reading (INSERT ... ON CONFLICT DO NOTHING); returns the rows stored (0 for a duplicate)."""
    row = (time, device, kind, seq, temperature, None, None, motion, None)
    return conn.execute(INSERT_READING, row).rowcount


def _approx(rows: list[tuple]) -> list[tuple]:
    return [tuple(pytest.approx(v) if isinstance(v, float) else v for v in row) for row in rows]


def _columns(conn, relation: str) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (relation,),
    ).fetchall()


def _applied_editions(conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT DISTINCT edition FROM schema_migrations").fetchall()}


# --- edition detection --------------------------------------------------------------------------------------


def test_pglite_offers_timescaledb_but_detection_needs_preload(ts):
    """What detect_edition reports on pglite, and why the other tests force the edition.

    pglite loads TimescaleDB on CREATE EXTENSION without shared_preload_libraries (which it cannot set); a
    real server refuses to, so detect_edition rightly falls back to `postgres` when it is not preloaded.
    The license it would then read to choose `timescale` over `timescale-apache` is `timescale` here.
    """
    assert ts.detected.name == "postgres"
    assert ts.detected.timescaledb_available
    assert ts.detected.timescaledb_version.startswith("2.")
    assert "shared_preload_libraries" in ts.detected.note
    with ts.connect() as conn:
        assert _one(conn, "SELECT current_setting('timescaledb.license', true)") == "timescale"
        installed = _one(conn, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    assert installed == ts.detected.timescaledb_version


# --- timescale (Timescale License) edition ------------------------------------------------------------------


def test_timescale_edition_applies_every_migration(ts):
    assert ts.edition.name == "timescale"
    assert [m.path.name for m in ts.applied] == [m.path.name for m in migrate.discover("timescale")]
    assert any(m.path.name.endswith(".timescale.sql") for m in ts.applied)
    with ts.connect() as conn:
        assert _applied_editions(conn) == {"timescale"}


def test_sensor_data_is_a_compressed_hypertable(ts):
    with ts.connect() as conn:
        row = conn.execute(
            "SELECT primary_dimension, compression_enabled FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = 'sensor_data'"
        ).fetchone()
        settings = conn.execute(
            "SELECT attname, segmentby_column_index, orderby_column_index, orderby_asc "
            "FROM timescaledb_information.compression_settings WHERE hypertable_name = 'sensor_data' "
            "ORDER BY segmentby_column_index NULLS LAST, orderby_column_index"
        ).fetchall()
    assert row == ("time", True)
    assert settings == [
        ("device_id", 1, None, None),
        ("time", None, 1, False),
        ("kind", None, 2, True),
        ("seq", None, 3, True),
    ]


def test_rollups_are_real_time_continuous_aggregates_over_the_raw_readings(ts):
    with ts.connect() as conn:
        rows = conn.execute(
            "SELECT view_name, hypertable_name, materialization_hypertable_name, materialized_only "
            "FROM timescaledb_information.continuous_aggregates ORDER BY view_name"
        ).fetchall()
    assert [r[0] for r in rows] == ["sensor_data_1h", "sensor_data_1m"]
    hour, minute = rows
    # Both read the raw hypertable: 1h is not built on 1m, whose per-minute `samples` would mis-weight averages.
    assert minute[1] == "sensor_data" and hour[1] == "sensor_data"
    assert not hour[3] and not minute[3]  # real-time: the newest minutes show before a refresh


def test_policies_are_registered_and_each_runs(ts):
    with ts.connect() as conn:
        jobs = conn.execute(
            "SELECT job_id, proc_name, hypertable_name, config FROM timescaledb_information.jobs "
            "WHERE proc_schema = '_timescaledb_functions' AND proc_name LIKE 'policy_%%' "
            "AND proc_name <> 'policy_job_stat_history_retention' ORDER BY job_id"
        ).fetchall()
        found = {(name, table): config for _, name, table, config in jobs}
        assert len(found) == len(jobs) == 5
        assert found[("policy_compression", "sensor_data")]["compress_after"] == "7 days"
        assert found[("policy_retention", "sensor_data")]["drop_after"] == "90 days"
        assert found[("policy_retention", "sensor_data_1m")]["drop_after"] == "365 days"
        m1 = found[("policy_refresh_continuous_aggregate", "sensor_data_1m")]
        h1 = found[("policy_refresh_continuous_aggregate", "sensor_data_1h")]
        assert (m1["start_offset"], m1["end_offset"]) == ("03:00:00", "00:01:00")
        assert (h1["start_offset"], h1["end_offset"]) == ("3 days", "01:00:00")
        # No background workers here: run each job in the foreground to prove its configuration is valid.
        for job_id, *_ in jobs:
            conn.execute("CALL run_job(%s)", (job_id,))


def test_refresh_and_maintain_functions_exist_and_run(ts):
    with ts.connect() as conn:
        now = datetime.now(UTC)
        # The policies refresh the aggregates, so the ingest's call is a no-op in this edition.
        assert _one(conn, "SELECT iots6_refresh_rollups(%s, %s)", (now - timedelta(hours=1), now)) == 0
        assert _one(conn, "SELECT iots6_maintain()") == {
            "jobs": 5,
            "retention_policies_updated": 0,
            "rejected_fields_deleted": 0,
        }
        assert _one(conn, "SELECT iots6_ensure_partitions(%s, %s)", (now, now)) == 0


def test_maintain_keeps_retention_policies_in_step_with_settings(ts):
    def drop_after() -> dict[str, str]:
        rows = conn.execute(
            "SELECT hypertable_name, config ->> 'drop_after' FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention' AND hypertable_name IN ('sensor_data', 'sensor_data_1m')"
        ).fetchall()
        return dict(rows)

    set_keep = "UPDATE iots6_settings SET value = %s WHERE key = %s"
    with ts.connect() as conn:
        try:
            conn.execute(set_keep, ("30 days", "raw_retention"))
            conn.execute(set_keep, ("2 years", "rollup_1m_retention"))
            assert _one(conn, "SELECT iots6_maintain()") == {
                "jobs": 5,
                "retention_policies_updated": 2,
                "rejected_fields_deleted": 0,
            }
            assert drop_after() == {"sensor_data": "30 days", "sensor_data_1m": "2 years"}
            assert _one(conn, "SELECT iots6_maintain()")["retention_policies_updated"] == 0
        finally:
            conn.execute(set_keep, ("90 days", "raw_retention"))
            conn.execute(set_keep, ("365 days", "rollup_1m_retention"))
            conn.execute("SELECT iots6_maintain()")
        assert drop_after() == {"sensor_data": "90 days", "sensor_data_1m": "365 days"}


def test_readings_roll_up_into_the_continuous_aggregates(ts):
    device, base = "ts-rollup", _base()
    with ts.connect() as conn:
        assert _insert_readings(conn, device, base) == [1, 1, 0, 1, 1, 1]
        assert conn.execute(
            "SELECT count(*), max(temperature) FROM sensor_data WHERE device_id = %s", (device,)
        ).fetchone() == (5, 30.0)
        conn.execute("CALL refresh_continuous_aggregate('sensor_data_1m', NULL, NULL)")
        conn.execute("CALL refresh_continuous_aggregate('sensor_data_1h', NULL, NULL)")
        assert _rollup(conn, "sensor_data_1m", device) == _approx(_expected_1m(base))
        assert _rollup(conn, "sensor_data_1h", device) == _approx(_expected_1h(base))


def test_hourly_average_ignores_readings_without_a_temperature(ts):
    device, base = "ts-weights", _base() - timedelta(hours=2)
    with ts.connect() as conn:
        _insert(conn, base, device, 1, temperature=20.0)
        _insert(conn, base + timedelta(seconds=1), device, 2, kind="motion", motion=True)
        _insert(conn, base + timedelta(minutes=1), device, 3, temperature=30.0)
        conn.execute("CALL refresh_continuous_aggregate('sensor_data_1m', NULL, NULL)")
        conn.execute("CALL refresh_continuous_aggregate('sensor_data_1h', NULL, NULL)")
        avg = _one(conn, "SELECT temperature_avg FROM sensor_data_1h WHERE device_id = %s", (device,))
    assert avg == pytest.approx(25.0)  # (20 + 30) / 2; the rollups say (20*2 + 30*1) / 3


def test_compression_and_retention_policies_act_when_run(ts):
    late, old = "ts-late", "ts-old"
    with ts.connect() as conn:
        jobs = dict(
            conn.execute(
                "SELECT proc_name, job_id FROM timescaledb_information.jobs WHERE hypertable_name = 'sensor_data'"
            ).fetchall()
        )
        ten_days = _base() - timedelta(days=9)
        _insert(conn, ten_days, late, 1, temperature=18.0)
        _insert(conn, _base() - timedelta(days=120), old, 1, temperature=5.0)
        conn.execute("CALL run_job(%s)", (jobs["policy_retention"],))
        assert _one(conn, "SELECT count(*) FROM sensor_data WHERE device_id = %s", (old,)) == 0
        conn.execute("CALL run_job(%s)", (jobs["policy_compression"],))
        compressed = _one(
            conn,
            "SELECT is_compressed FROM timescaledb_information.chunks WHERE hypertable_name = 'sensor_data' "
            "AND %s >= range_start AND %s < range_end",
            (ten_days, ten_days),
        )
        assert compressed
        # A device that was offline for days redelivers into the compressed chunk: still absorbed.
        assert _insert(conn, ten_days, late, 1, temperature=99.0) == 0
        assert conn.execute(
            "SELECT count(*), max(temperature) FROM sensor_data WHERE device_id = %s", (late,)
        ).fetchone() == (1, 18.0)


def test_rollup_columns_match_the_plain_postgres_edition(ts, database):
    with database.connect() as pg_conn:
        plain = {rel: _columns(pg_conn, rel) for rel in ("sensor_data", "sensor_data_1m", "sensor_data_1h")}
        assert _applied_editions(pg_conn) == {"postgres"}
    with ts.connect() as conn:
        timescale = {rel: _columns(conn, rel) for rel in ("sensor_data", "sensor_data_1m", "sensor_data_1h")}
    assert plain["sensor_data_1m"] == plain["sensor_data_1h"]
    assert timescale == plain


_ACCOUNTING = ("rejected_field", "devices", "sensor_data")


def _rejected_field_row(conn, device: str, time: datetime, seq: int) -> None:
    conn.execute(
        "INSERT INTO rejected_field (device_id, time, kind, seq, field, raw_value, reason, detail, topic) "
        "VALUES (%s, %s, 'telemetry', %s, 'pressure', '0.88', 'double_converted', 'twice', 'iots6/x')",
        (device, time, seq),
    )


def test_ingest_accounting_matches_the_plain_postgres_edition_and_ages_out(ts, database):
    """0006: rejected_field, sensor_data.dropped (added to a hypertable with compression on) and the registry's
    dropped counts are the same in every edition; iots6_maintain() deletes rejections older than raw_retention."""
    with database.connect() as pg_conn:
        plain = {rel: _columns(pg_conn, rel) for rel in _ACCOUNTING}
    with ts.connect() as conn:
        assert {rel: _columns(conn, rel) for rel in _ACCOUNTING} == plain
        assert ("dropped", "integer") in plain["sensor_data"] and ("dropped_total", "bigint") in plain["devices"]
        device = "ts-accounting"
        _rejected_field_row(conn, device, _base(), 1)
        _rejected_field_row(conn, device, _base() - timedelta(days=120), 2)
        assert _one(conn, "SELECT iots6_maintain()")["rejected_fields_deleted"] == 1
        assert conn.execute("SELECT seq FROM rejected_field WHERE device_id = %s", (device,)).fetchall() == [(1,)]
        # A reading with `dropped` lands in the hypertable created before the column was added.
        conn.execute(
            "INSERT INTO sensor_data (time, device_id, kind, seq, dropped) VALUES (%s, %s, 'telemetry', 1, 4)",
            (_base(), device),
        )
        assert _one(conn, "SELECT dropped FROM sensor_data WHERE device_id = %s", (device,)) == 4


def test_timescale_rerun_applies_nothing_and_a_changed_edition_is_refused(ts):
    with ts.connect() as conn:
        assert migrate.migrate(conn, edition_override="timescale")[1] == []
        # Without the override pglite is detected as `postgres` (see above): the recorded edition wins.
        with pytest.raises(OperationFailed, match="applied for edition `timescale`"):
            migrate.migrate(conn)


# --- timescale-apache edition -------------------------------------------------------------------------------


def test_apache_edition_uses_only_apache_features(apache):
    assert apache.edition.name == "timescale-apache"
    expected = [m.path.name for m in migrate.discover("timescale-apache")]
    assert [m.path.name for m in apache.applied] == expected
    with apache.connect() as conn:
        assert _applied_editions(conn) == {"timescale-apache"}
        assert conn.execute(
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"
        ).fetchall() == [("sensor_data", False)]
        assert _one(conn, "SELECT count(*) FROM timescaledb_information.continuous_aggregates") == 0
        # Only TimescaleDB's own housekeeping job (id < 1000): no licensed policy was added.
        assert _one(conn, "SELECT count(*) FROM timescaledb_information.jobs WHERE job_id >= 1000") == 0
        kinds = conn.execute(
            "SELECT relname, relkind FROM pg_class WHERE relname IN ('sensor_data_1m', 'sensor_data_1h') ORDER BY 1"
        ).fetchall()
    assert kinds == [("sensor_data_1h", "r"), ("sensor_data_1m", "r")]  # plain tables


def test_apache_refresh_function_fills_the_rollup_tables(apache):
    device, base = "apache-rollup", _base()
    with apache.connect() as conn:
        assert _insert_readings(conn, device, base) == [1, 1, 0, 1, 1, 1]
        assert _rollup(conn, "sensor_data_1m", device) == []  # tables: nothing until refreshed
        assert (
            conn.execute("SELECT iots6_refresh_rollups(%s, %s)", (base, base + timedelta(minutes=5))).fetchone()[0] == 3
        )
        assert _rollup(conn, "sensor_data_1m", device) == _approx(_expected_1m(base))
        assert _rollup(conn, "sensor_data_1h", device) == _approx(_expected_1h(base))
        # Refreshing again (the ingest repeats overlapping ranges) changes nothing.
        conn.execute("SELECT iots6_refresh_rollups(%s, %s)", (base, base + timedelta(hours=1)))
        assert _rollup(conn, "sensor_data_1h", device) == _approx(_expected_1h(base))


def test_apache_maintain_drops_old_chunks_and_old_minute_rollups(apache):
    device = "apache-maint"
    with apache.connect() as conn:
        recent, ancient = _base(), _base() - timedelta(days=120)
        _insert(conn, recent, device, 1, temperature=21.0)
        _insert(conn, ancient, device, 2, temperature=5.0)
        conn.execute(
            "INSERT INTO sensor_data_1m (bucket, device_id, samples, motion_events, switch_events) "
            "VALUES (%s, %s, 1, 0, 0)",
            (_base() - timedelta(days=400), device),
        )
        assert _one(conn, "SELECT iots6_maintain()") == {"chunks_dropped": 1, "rejected_fields_deleted": 0}
        kept = conn.execute("SELECT seq FROM sensor_data WHERE device_id = %s", (device,)).fetchall()
        assert kept == [(1,)]
        assert _one(conn, "SELECT count(*) FROM sensor_data_1m WHERE device_id = %s", (device,)) == 0


def test_apache_maintain_ages_out_rejected_fields(apache):
    device = "apache-accounting"
    with apache.connect() as conn:
        _rejected_field_row(conn, device, _base(), 1)
        _rejected_field_row(conn, device, _base() - timedelta(days=120), 2)
        assert _one(conn, "SELECT iots6_maintain()")["rejected_fields_deleted"] == 1
        assert conn.execute("SELECT seq FROM rejected_field WHERE device_id = %s", (device,)).fetchall() == [(1,)]


def test_apache_rerun_applies_nothing(apache):
    with apache.connect() as conn:
        assert migrate.migrate(conn, edition_override="timescale-apache")[1] == []
