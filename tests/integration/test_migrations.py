"""Migrations against a real PostgreSQL: applied once, recorded, re-run cleanly, edited files refused."""

from __future__ import annotations

import psycopg
import pytest

from iotctl.errors import OperationFailed
from iots6_platform.core.db import migrate


def test_template_is_fully_migrated(database):
    with database.connect(autocommit=True) as conn:
        edition, states = migrate.status(conn)
        assert edition.name == "postgres"
        assert states and all(s.applied_at is not None for s in states)
        assert [s.version for s in states] == sorted(s.version for s in states)
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"devices", "dead_letter", "sensor_data_1m", "sensor_data_1h", "schema_migrations"} <= tables


def test_rerun_applies_nothing(database):
    with database.connect(autocommit=True) as conn:
        _, done = migrate.migrate(conn)
        assert done == []
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
        assert count == len(migrate.discover("postgres"))


def test_fresh_database_migrates_in_order(pg):
    with psycopg.connect(pg.server.superuser_conninfo(), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS fresh_mig WITH (FORCE)")
        admin.execute("CREATE DATABASE fresh_mig")
    with psycopg.connect(pg.server.superuser_conninfo("fresh_mig"), autocommit=True) as conn:
        edition, done = migrate.migrate(conn)
        assert [m.version for m in done] == [m.version for m in migrate.discover(edition.name)]
        applied = conn.execute("SELECT version, edition FROM schema_migrations ORDER BY version").fetchall()
        assert [v for v, _ in applied] == [m.version for m in done]
        assert {e for _, e in applied} == {"postgres"}


def test_edited_migration_is_refused(database, tmp_path, monkeypatch):
    with database.connect(autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
        with pytest.raises(OperationFailed, match="changed after it was applied"):
            migrate.migrate(conn)


def test_failed_migration_rolls_back(database, tmp_path):
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for m in migrate.discover("postgres"):
        (migrations / m.path.name).write_text(m.sql)
    (migrations / "0999_broken.sql").write_text("CREATE TABLE half_done (id int);\nSELECT no_such_function();\n")
    with database.connect(autocommit=True) as conn:
        with pytest.raises(OperationFailed, match="0999_broken.sql"):
            migrate.migrate(conn, directory=migrations)
        assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM schema_migrations WHERE version = 999").fetchone()[0] == 0
        _, states = migrate.status(conn, directory=migrations)
        assert [s.version for s in states if s.applied_at is None] == [999]


def test_maintain_ages_out_rejected_fields_with_the_raw_readings(database):
    """0006 wraps each edition's iots6_maintain(): rejected_field rows go when their readings do."""
    with database.connect(autocommit=True) as conn:
        for seq, age in ((1, "1 hour"), (2, "120 days")):
            conn.execute(
                "INSERT INTO rejected_field (device_id, time, kind, seq, field, raw_value, reason, detail, topic) "
                "VALUES ('d', now() - %s::interval, 'telemetry', %s, 'humidity', '130', 'impossible_value', "
                "'humidity 130 %%RH is outside 0.0..100.0 %%RH', 'iots6/d/telemetry')",
                (age, seq),
            )
        result = conn.execute("SELECT iots6_maintain()").fetchone()[0]
        assert result["rejected_fields_deleted"] == 1 and "partitions_dropped" in result
        assert conn.execute("SELECT seq FROM rejected_field").fetchall() == [(1,)]
