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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from iotctl import pki
from iotctl.broker import dynsec
from iotctl.broker.accounts import ROLE_CONFIG, ROLE_INGEST, ROLE_OPERATOR, service_username
from iotctl.broker.identities import DynsecIdentities
from iotctl.endpoints import MqttEndpoint
from iotctl.stack.mosquitto import MosquittoServer, TlsListener, find_mosquitto
from iotctl.stack.postgres import PostgresServer, find_pg_bindir
from iotctl.stack.procs import free_port, wait_for_port
from iots6_platform.core.db import migrate

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


#: A test-only client that may publish anything under the base (the product has no such account: the operator
#: only reads). Tests use it to put shapes on the wire that no device account may produce.
PUBLISHER = "test.publisher"


@dataclass
class Broker:
    """A real Mosquitto with dynamic security, as the native stack runs it; accounts made over its control API."""

    server: MosquittoServer
    host: str
    port: int
    admin: tuple[str, str]
    operator: tuple[str, str]
    ingest: tuple[str, str]
    config: tuple[str, str]
    publisher: tuple[str, str] = ("", "")

    def endpoint(self, username: str, password: str) -> MqttEndpoint:
        return MqttEndpoint(self.host, self.port, username, password)

    def admin_session(self) -> dynsec.DynsecAdmin:
        return dynsec.DynsecAdmin(self.endpoint(*self.admin))

    def add_device(self, device_id: str) -> str:
        """Provision a broker client for ``device_id`` (client id must equal it) the way the product does;
        returns its password. Dynamic security applies it at once: the login works when this returns."""
        password = uuid.uuid4().hex
        with DynsecIdentities(self.admin_session(), "iots6") as identities:
            identities.provision(device_id, password)
        return password


def _add_publisher(broker: Broker) -> None:
    broker.publisher = (PUBLISHER, uuid.uuid4().hex)
    with broker.admin_session() as session:
        session.ensure_role(PUBLISHER, [{"acltype": "publishClientSend", "topic": "#", "allow": True}])
        session.create_client(PUBLISHER, broker.publisher[1], [PUBLISHER])


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
    if find_mosquitto() is None or dynsec.find_plugin() is None:
        pytest.fail("`mosquitto` 2 with its dynamic security plugin not found; run `make install-system`.")
    directory = tmp_path_factory.mktemp("mqtt")
    server = MosquittoServer(directory, free_port())
    passwords = {role: uuid.uuid4().hex for role in (ROLE_OPERATOR, ROLE_INGEST, ROLE_CONFIG)}
    admin = uuid.uuid4().hex
    server.prepare_state(admin, passwords)
    server.start()
    try:
        found = Broker(
            server,
            "127.0.0.1",
            server.port,
            (dynsec.ADMIN_USERNAME, admin),
            *((service_username(r), passwords[r]) for r in (ROLE_OPERATOR, ROLE_INGEST, ROLE_CONFIG)),
        )
        _add_publisher(found)
        yield found
    finally:
        server.stop()


@dataclass
class TlsMosquitto(MosquittoServer):
    """A broker whose ``tls`` listener authenticates the broker only (what the platform exposes on 8883), plus a
    second TLS listener on ``mtls_port`` that also requires a client certificate signed by ``cafile``. Accounts and
    ACLs are the same on every listener (``per_listener_settings false``)."""

    mtls_port: int = 0
    cafile: Path | None = None

    def render_config(self) -> str:
        mtls = [
            f"listener {self.mtls_port} {self.tls.bind}",
            "protocol mqtt",
            f"cafile {self.cafile}",
            f"certfile {self.tls.certfile}",
            f"keyfile {self.tls.keyfile}",
            "require_certificate true",
        ]
        return (
            super().render_config()
            + "\n# Client-certificate listener of the test fixture (tests/conftest.py: tls_broker)\n"
            + "\n".join(mtls)
            + "\n"
        )


@dataclass
class TlsBroker(Broker):
    """``broker``'s interface (plaintext ``port``, accounts, ``add_device``) plus TLS: ``tls_port`` (server
    authentication), ``mtls_port`` (client certificate required), the ``ca`` that signed the broker's certificate
    (for 127.0.0.1 and localhost) and :meth:`client_cert` to issue client certificates from it."""

    tls_port: int = 0
    mtls_port: int = 0
    ca: pki.CertPair | None = None
    server_cert: pki.CertPair | None = None
    pki_dir: Path | None = None

    def client_cert(self, name: str, common_name: str | None = None) -> pki.CertPair:
        return pki.issue_client_cert(self.ca, self.pki_dir / "clients", name, common_name or name)


@pytest.fixture(scope="session")
def tls_broker(tmp_path_factory) -> Iterator[TlsBroker]:
    """A Mosquitto of its own (dynamic security, like ``broker``) with TLS listeners, its CA from ``iotctl.pki``."""
    if find_mosquitto() is None or dynsec.find_plugin() is None:
        pytest.fail("`mosquitto` 2 with its dynamic security plugin not found; run `make install-system`.")
    directory = tmp_path_factory.mktemp("mqtt-tls")
    pki_dir = directory / "pki"
    ca = pki.ensure_ca(pki_dir, common_name="iotctl test CA")
    server_cert = pki.issue_server_cert(ca, pki_dir, "broker", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    server = TlsMosquitto(
        directory / "broker",
        free_port(),
        tls=TlsListener(free_port(), server_cert.cert, server_cert.key),
        mtls_port=free_port(),
        cafile=ca.cert,
    )
    passwords = {role: uuid.uuid4().hex for role in (ROLE_OPERATOR, ROLE_INGEST, ROLE_CONFIG)}
    admin = uuid.uuid4().hex
    server.prepare_state(admin, passwords)
    pid = server.start()
    try:
        wait_for_port(server.bind, server.mtls_port, 10, "mosquitto (client-certificate TLS)", server.log_file, pid)
        found = TlsBroker(
            server,
            "127.0.0.1",
            server.port,
            (dynsec.ADMIN_USERNAME, admin),
            *((service_username(r), passwords[r]) for r in (ROLE_OPERATOR, ROLE_INGEST, ROLE_CONFIG)),
            tls_port=server.tls.port,
            mtls_port=server.mtls_port,
            ca=ca,
            server_cert=server_cert,
            pki_dir=pki_dir,
        )
        _add_publisher(found)
        yield found
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
