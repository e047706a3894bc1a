"""Versioned SQL migrations, applied in order, each in its own transaction, under an advisory lock.

Files live next to this module in ``migrations/`` as ``NNNN_name.sql`` (every edition) or
``NNNN_name.<edition>.sql`` (one edition; preferred over the generic file).  Editions:

* ``timescale``: TimescaleDB with the Timescale License (hypertable, compression, retention, continuous aggregates);
* ``timescale-apache``: TimescaleDB Apache edition, as on Azure Database for PostgreSQL (hypertable only);
* ``postgres``: plain PostgreSQL (native daily partitions; rollup tables refreshed by the ingest).

Each applied migration is recorded in ``schema_migrations`` with the edition and a checksum of the file: an edited
migration or a changed edition is refused rather than silently diverging.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import get_args

import psycopg

from iots6_platform.core.errors import OperationFailed
from iots6_platform.core.settings import Edition

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
EDITIONS: tuple[str, ...] = get_args(Edition)  # defined with MIGRATE_EDITION
#: pg_advisory_lock key: two migrators never interleave ("iots6mig" as a 64-bit int).
ADVISORY_LOCK_KEY = 0x696F747336_6D6967 & 0x7FFFFFFFFFFFFFFF
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)(?:\.(postgres|timescale-apache|timescale))?\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    edition     text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Edition:
    name: str  # one of EDITIONS
    server_version: str
    timescaledb_version: str | None = None
    timescaledb_available: bool = False
    note: str = ""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class MigrationState:
    version: int
    name: str
    applied_at: datetime | None  # None: pending
    edition: str | None


def detect_edition(conn) -> Edition:
    """Which edition this server offers: TimescaleDB (and its license) if it can be loaded, else postgres."""
    server_version = conn.execute("SHOW server_version").fetchone()[0]
    row = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if row is None:
        return Edition("postgres", server_version, note="timescaledb extension not installed on the server")
    default_version, installed_version = row
    preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
    if "timescaledb" not in preload:
        return Edition(
            "postgres",
            server_version,
            default_version,
            True,
            note="timescaledb is installed but not in shared_preload_libraries; using plain PostgreSQL",
        )
    license_ = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()[0]
    name = "timescale-apache" if license_ == "apache" else "timescale"
    return Edition(name, server_version, installed_version or default_version, True, note=f"license={license_}")


def discover(edition: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations for ``edition``, in version order (edition-specific file preferred over generic)."""
    by_version: dict[int, dict[str | None, Path]] = {}
    names: dict[int, str] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME_RE.match(path.name)
        if not match:
            raise OperationFailed(f"Migration file `{path.name}` is misnamed; use NNNN_name[.edition].sql.")
        version, name, variant = int(match[1]), match[2], match[3]
        if names.setdefault(version, name) != name:
            raise OperationFailed(f"Migration version {version:04d} has two names; rename `{path.name}`.")
        by_version.setdefault(version, {})[variant] = path
    result = []
    for version in sorted(by_version):
        variants = by_version[version]
        path = variants.get(edition) or variants.get(None)
        if path is None:
            raise OperationFailed(
                f"Migration {version:04d}_{names[version]} has no `{edition}` variant nor a generic one; add it."
            )
        result.append(Migration(version, names[version], path))
    return result


def _applied(conn) -> dict[int, tuple]:
    exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0]
    if exists is None:
        return {}
    rows = conn.execute("SELECT version, name, edition, checksum, applied_at FROM schema_migrations").fetchall()
    return {r[0]: r for r in rows}


def status(conn, directory: Path = MIGRATIONS_DIR) -> tuple[Edition, list[MigrationState]]:
    edition = detect_edition(conn)
    applied = _applied(conn)
    states = []
    for m in discover(edition.name, directory):
        row = applied.get(m.version)
        states.append(MigrationState(m.version, m.name, row[4] if row else None, row[2] if row else None))
    return edition, states


def migrate(
    conn, edition_override: str | None = None, directory: Path = MIGRATIONS_DIR
) -> tuple[Edition, list[Migration]]:
    """Apply every pending migration; returns the edition and what was applied (empty when up to date).

    ``conn`` must be a psycopg connection in autocommit mode; each migration runs in its own transaction.
    """
    edition = detect_edition(conn)
    if edition_override:
        if edition_override not in EDITIONS:
            raise OperationFailed(f"Edition `{edition_override}` is unknown; use one of {', '.join(EDITIONS)}.")
        edition = Edition(
            edition_override,
            edition.server_version,
            edition.timescaledb_version,
            edition.timescaledb_available,
            note="forced",
        )
    conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
    try:
        conn.execute(_CREATE_TABLE)
        applied = _applied(conn)
        done: list[Migration] = []
        for m in discover(edition.name, directory):
            row = applied.get(m.version)
            if row is not None:
                if row[2] != edition.name:
                    raise OperationFailed(
                        f"Migration {m.version:04d} was applied for edition `{row[2]}` but the server is now "
                        f"`{edition.name}`; migrate the data to a fresh database instead."
                    )
                if row[3] != m.checksum:
                    raise OperationFailed(
                        f"Migration `{m.path.name}` changed after it was applied; restore it and add a new migration."
                    )
                continue
            try:
                with conn.transaction():
                    conn.execute(m.sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, edition, checksum) VALUES (%s, %s, %s, %s)",
                        (m.version, m.name, edition.name, m.checksum),
                    )
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise OperationFailed(
                    f"Migration `{m.path.name}` failed and was rolled back ({first}); fix it and re-run."
                ) from None
            done.append(m)
        return edition, done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
