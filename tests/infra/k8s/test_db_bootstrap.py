"""The migration Job's database bootstrap, run for real: the chart's rendered bootstrap.sh and bootstrap.sql (from
the iots6-migrate ConfigMap, with the Job's environment) against the test PostgreSQL, logged in as an
administrator that is NOT a superuser (CREATEROLE, CREATEDB: the shape of Flexible Server's admin login); then
the migrations as the application role, as the Job's second container runs them. TimescaleDB itself is not on
this server, so the extension branch is skipped by the script's own check (tests/timescale covers the editions).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import psycopg
import pytest
from psycopg import sql

from iots6_platform.core.db import migrate

from .conftest import render_env


@pytest.fixture
def admin(pg):
    """A non-superuser administrator role, and cleanup of everything the bootstrap makes."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "admin": f"azadmin_{suffix}",
        "db": f"iots6_boot_{suffix}",
        "app": f"app_{suffix}",
        "grafana": f"graf_{suffix}",
    }
    password = f"ad:m\\{uuid.uuid4().hex}"  # a passfile needs `:` and `\` escaped
    with psycopg.connect(pg.server.superuser_conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD {}").format(
                sql.Identifier(names["admin"]), sql.Literal(password)
            )
        )
    yield names, password
    with psycopg.connect(pg.server.superuser_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(names["db"])))
        for role in ("app", "grafana", "admin"):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(names[role])))


def _job():
    docs = render_env("dev")
    (config,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "iots6-migrate"]
    (job,) = [d for d in docs if d["kind"] == "Job"]
    (init,) = job["spec"]["template"]["spec"]["initContainers"]
    return config["data"], {e["name"]: e["value"] for e in init["env"]}


def test_bootstrap_then_migrations_then_a_read_only_grafana(pg, admin, tmp_path):
    for tool in ("psql", "pg_isready"):
        if shutil.which(tool) is None:
            pytest.fail(f"`{tool}` not found; run `make install-system` (apt-get install postgresql).")
    names, admin_password = admin
    scripts, env = _job()
    (tmp_path / "bootstrap.sh").write_text(scripts["bootstrap.sh"])
    (tmp_path / "bootstrap.sql").write_text(scripts["bootstrap.sql"])
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    passwords = {"admin": admin_password, "app": f"a:p\\{uuid.uuid4().hex}", "grafana": uuid.uuid4().hex}
    for key, value in passwords.items():
        (secrets / f"{key}-password").write_text(value + "\n")
    env.update(
        PGHOST="127.0.0.1",
        PGPORT=str(pg.server.port),
        PGUSER=names["admin"],
        PGSSLMODE="disable",
        IOTS6_SECRETS_DIR=str(secrets),
        IOTS6_SQL=str(tmp_path / "bootstrap.sql"),
        IOTS6_TMP=str(tmp_path),
        IOTS6_DB_NAME=names["db"],
        IOTS6_APP_USER=names["app"],
        IOTS6_GRAFANA_USER=names["grafana"],
    )

    def bootstrap():
        done = subprocess.run(
            ["/bin/sh", str(tmp_path / "bootstrap.sh")],
            env={"PATH": os.environ["PATH"], **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert not (tmp_path / "pgpass").exists()  # the passfile is gone
        for value in passwords.values():
            assert value not in done.stdout + done.stderr
        return done

    bootstrap()

    def connect(role: str, password: str) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=pg.server.port,
            user=names[role],
            password=password,
            dbname=names["db"],
            autocommit=True,
        )

    with connect("app", passwords["app"]) as conn:
        migrate.migrate(conn)  # what `iotctl db migrate` runs as the application role
        conn.execute("INSERT INTO devices (device_id) VALUES ('boot-test')")
    with connect("grafana", passwords["grafana"]) as conn:
        assert conn.execute("SELECT count(*) FROM devices").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM sensor_data").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO devices (device_id) VALUES ('grafana-writes')")

    # A second run (every sync runs it) changes nothing but the passwords: rotate the application's.
    old = passwords["app"]
    passwords["app"] = uuid.uuid4().hex
    (secrets / "app-password").write_text(passwords["app"])
    bootstrap()
    with pytest.raises(psycopg.OperationalError):
        connect("app", old).close()
    with connect("app", passwords["app"]) as conn:
        assert conn.execute("SELECT count(*) FROM devices").fetchone()[0] == 1
