"""Entry point: ``iots6-migrate`` / ``python -m iots6_platform.core.db``, the one-shot migration job of the images.

Configured by MIGRATE_* env vars (the prefix is the program's name, as INGEST_* and CONFIG_SERVER_* are), defined
in :class:`iots6_platform.core.settings.MigrateSettings` (docs/database.md's table is generated from it).

It prints one JSON line on stdout, ``{"edition": ..., "applied": ["0001_core", ...]}`` (what automation such as
the Ansible role reads to report a change), and talks on stderr. Exit codes: 0 applied (or already up to date),
1 a migration failed, 2 bad configuration, 4 database unreachable.
An operator runs the same migrations with ``iotctl db migrate``.
"""

from __future__ import annotations

import json
import os
import sys

import psycopg

from iots6_platform.core.db import migrate
from iots6_platform.core.errors import OperationFailed
from iots6_platform.core.settings import ConfigError, MigrateSettings, read_secrets


def main(env: dict[str, str] | None = None) -> int:
    try:
        settings = MigrateSettings.from_environ(os.environ if env is None else env)
        password = read_secrets(settings)["database_password"]
    except ConfigError as exc:
        sys.stderr.write(f"iots6-migrate: error: {exc}\n")
        return 2
    url, edition = settings.database_url, settings.edition
    kwargs = {"autocommit": True, "connect_timeout": 10}
    if password is not None:
        kwargs["password"] = password
    try:
        conn = psycopg.connect(url, **kwargs)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        sys.stderr.write(
            f"iots6-migrate: error: database `{url}` is not reachable ({reason}); check MIGRATE_DATABASE_URL and "
            "MIGRATE_DATABASE_PASSWORD_FILE.\n"
        )
        return 4
    try:
        with conn:
            found, applied = migrate.migrate(conn, edition)
    except OperationFailed as exc:
        sys.stderr.write(f"iots6-migrate: error: {exc}\n")
        return 1
    names = [f"{m.version:04d}_{m.name}" for m in applied]
    sys.stdout.write(json.dumps({"edition": found.name, "applied": names}) + "\n")
    for m in applied:
        sys.stderr.write(f"applied {m.version:04d}_{m.name} ({m.path.name})\n")
    sys.stderr.write(f"{len(applied)} migration(s) applied; schema up to date on edition `{found.name}`.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
