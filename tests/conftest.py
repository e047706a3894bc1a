"""Fixtures that start real services of their own: PostgreSQL and Mosquitto in temp dirs on free ports.

They use the same code the native stack uses (``iotctl.stack``), stop their process by pid at the end, and never
touch a server that was already running on the machine.  Each test gets its own database (a copy of a migrated
template) and its own device ids, so tests don't see each other's rows or traffic.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from iotctl.broker.accounts import ROLE_INGEST, ROLE_OPERATOR, service_username
from iotctl.db import migrate
from iotctl.stack.mosquitto import MosquittoServer, find_mosquitto
from iotctl.stack.postgres import PostgresServer, find_pg_bindir
from iotctl.stack.procs import free_port

DB_OWNER = "iots6"
_db_counter = itertools.count()


@dataclass
class PgInfo:
    server: PostgresServer
    password: str
    template: str

    def url(self, dbname: str) -> str:
        return f"postgresql://{DB_OWNER}@127.0.0.1:{self.server.port}/{dbname}"

    def conninfo(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.server.port} user={DB_OWNER} password={self.password} dbname={dbname}"


@dataclass
class Database:
    name: str
    url: str  # without password
    conninfo: str  # with password, for test code only
    password: str
    pg: PgInfo

    def connect(self, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.conninfo, **kwargs)


@dataclass
class Broker:
    server: MosquittoServer
    host: str
    port: int
    operator: tuple[str, str]
    ingest: tuple[str, str]

    def add_device(self, device_id: str) -> str:
        password = self.server.accounts.add(device_id, "device")
        self.server.reload()
        self.wait_login(device_id, password)
        return password

    def wait_login(self, username: str, password: str, timeout: float = 5.0) -> None:
        """Mosquitto re-reads its password file asynchronously after SIGHUP: wait until the login works."""
        from iotctl.endpoints import MqttEndpoint
        from iotctl.errors import AuthRefused
        from iotctl.mqtt import connect

        deadline = time.monotonic() + timeout
        while True:
            try:
                client = connect(MqttEndpoint(self.host, self.port, username, password), timeout=2)
            except AuthRefused:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
                continue
            client.disconnect()
            client.loop_stop()
            return


@pytest.fixture(scope="session")
def pg() -> Iterator[PgInfo]:
    if find_pg_bindir() is None:
        pytest.fail("PostgreSQL server binaries not found; run `make install-system` (apt-get install postgresql).")
    # pytest's temp root is private to us; as root, PostgreSQL runs as `postgres`, who must reach its directory.
    directory = Path(tempfile.mkdtemp(prefix="iotctl-test-pg-"))
    os.chmod(directory, 0o755)
    # No fsync (speed), but a commit is written to the WAL before it returns, as in production: a test that
    # crashes PostgreSQL (tests/integration/test_no_loss.py) then loses no committed reading.
    server = PostgresServer(
        directory / "cluster", free_port(), fsync=False, extra_settings={"synchronous_commit": "on"}
    )
    server.start()
    password = uuid.uuid4().hex
    try:
        server.ensure_database("iots6_template", DB_OWNER, password)
        info = PgInfo(server, password, "iots6_template")
        with psycopg.connect(info.conninfo("iots6_template"), autocommit=True) as conn:
            migrate.migrate(conn)
        yield info
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def database(pg: PgInfo) -> Iterator[Database]:
    """A fresh, migrated database for one test."""
    name = f"t{os.getpid()}_{next(_db_counter)}"
    with psycopg.connect(pg.server.superuser_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg.template}" OWNER {DB_OWNER}')
    yield Database(name, pg.url(name), pg.conninfo(name), pg.password, pg)
    with psycopg.connect(pg.server.superuser_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> Iterator[Broker]:
    if find_mosquitto() is None:
        pytest.fail("`mosquitto` not found; run `make install-system` (apt-get install mosquitto).")
    directory = tmp_path_factory.mktemp("mqtt")
    server = MosquittoServer(directory, free_port())
    operator = service_username(ROLE_OPERATOR)
    ingest = service_username(ROLE_INGEST)
    op_pw = server.accounts.add(operator, ROLE_OPERATOR)
    in_pw = server.accounts.add(ingest, ROLE_INGEST)
    server.start()
    try:
        yield Broker(server, "127.0.0.1", server.port, (operator, op_pw), (ingest, in_pw))
    finally:
        server.stop()


@pytest.fixture
def device_id() -> str:
    """A device id no other test uses."""
    return "dev-" + uuid.uuid4().hex[:12]


@pytest.fixture
def secret_file(tmp_path) -> callable:
    def write(text: str, name: str | None = None) -> Path:
        from iotctl.secretfiles import write_secret

        return write_secret(tmp_path / (name or f"secret-{uuid.uuid4().hex[:6]}"), text)

    return write
