"""The ingest's background thread (rollups and maintenance on their own connection) against a real PostgreSQL:
a refresh that fails keeps its range for the next one; start and stop leave no thread behind."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from iotctl.secretfiles import write_secret
from iots6_platform.ingest.background import Background
from iots6_platform.ingest.config import IngestConfig

from .conftest import count_rows, wait_until


def _background(database, tmp_path, **overrides) -> Background:
    """The ingest's configuration as the service reads it (INGEST_* and secret files), for this test's database."""
    env = {"INGEST_MQTT_PASSWORD_FILE": str(write_secret(tmp_path / "mqtt-password", "unused"))}
    env["INGEST_DATABASE_URL"] = database.url
    if database.password is not None:
        env["INGEST_DATABASE_PASSWORD_FILE"] = str(write_secret(tmp_path / "db-password", database.password))
    return Background(replace(IngestConfig.from_env(env), **overrides))


def test_a_failed_refresh_keeps_its_range_and_the_next_one_rolls_it_up(database, tmp_path):
    when = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    with database.connect(autocommit=True) as conn:
        conn.execute("INSERT INTO devices (device_id) VALUES ('bg-1')")
        conn.execute(
            "INSERT INTO sensor_data (time, device_id, seq, temperature) VALUES (%s, 'bg-1', 1, 20.0)", (when,)
        )
        conn.execute("ALTER FUNCTION iots6_refresh_rollups(timestamptz, timestamptz) RENAME TO refresh_gone")
    background = _background(database, tmp_path)
    try:
        background.mark_dirty(when + timedelta(seconds=30))
        background.mark_dirty(when)  # the earliest wins
        background.refresh_rollups()
        assert background.dirty_from == when
        assert count_rows(database, "SELECT count(*) FROM sensor_data_1m") == 0
        with database.connect(autocommit=True) as conn:
            conn.execute("ALTER FUNCTION refresh_gone(timestamptz, timestamptz) RENAME TO iots6_refresh_rollups")
        background.refresh_rollups()
        assert background.dirty_from is None
        assert count_rows(database, "SELECT samples FROM sensor_data_1m WHERE device_id = 'bg-1'") == 1
    finally:
        background.stop()


def test_start_runs_maintenance_and_stop_ends_the_thread(database, tmp_path):
    with database.connect(autocommit=True) as conn:
        conn.execute("SELECT iots6_drop_partitions(interval '-30 days')")  # every partition, so maintain makes some
    background = _background(database, tmp_path, rollup_interval_s=0.05)
    background.start()
    try:
        wait_until(
            lambda: (
                count_rows(database, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'sensor_data'::regclass") > 1
            ),
            10,
            what="partitions made by iots6_maintain()",
        )
    finally:
        background.stop()
    assert not background.thread.is_alive()
