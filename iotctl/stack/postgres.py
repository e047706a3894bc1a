"""Run a real PostgreSQL cluster in a directory of its own, on 127.0.0.1 and a private Unix socket.

Local (socket) connections are trusted: the socket lives inside the 0700 data directory, so only the owner (and
root) can reach it; TCP connections need a SCRAM password.  As root, initdb/pg_ctl run as the ``postgres`` user
(PostgreSQL refuses to run as root) and the directory is handed to that user.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from iotctl.errors import MissingDependency, OperationFailed
from iotctl.stack import procs

SUPERUSER = "postgres"
#: How long `start` waits for the processes of a server that died (SIGKILL, OOM killer) to let go of its shared
#: memory; they notice their postmaster's death within milliseconds.
CRASH_CLEANUP_TIMEOUT = 10.0


@dataclass(frozen=True)
class LockFile:
    """What ``postmaster.pid`` records (PostgreSQL >= 10): the postmaster's pid (line 1) and the id of the System V
    shared memory segment every server process stays attached to (line 7: ``key shmid``)."""

    pid: int
    shmid: int | None

    @classmethod
    def read(cls, path: Path) -> LockFile | None:
        try:
            lines = path.read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            shmid = int(lines[6].split()[1])
        except (IndexError, ValueError):
            shmid = None
        return cls(pid, shmid)


def pgserver_bindir() -> Path | None:
    """The PostgreSQL 16 bin dir shipped inside the pip package ``pgserver`` (the ``embedded`` extra).

    Located without importing ``pgserver`` (its import has side effects: warnings, atexit hooks)."""
    try:
        spec = importlib.util.find_spec("pgserver")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        bindir = Path(location) / "pginstall" / "bin"
        if (bindir / "pg_ctl").exists():
            return bindir
    return None


def find_pg_bindir(engine: str = "system") -> Path | None:
    """The newest PostgreSQL server bin dir: Debian's /usr/lib/postgresql/N/bin, or pg_ctl on PATH; with
    ``engine="embedded"``, the one inside the ``pgserver`` package."""
    if engine == "embedded":
        return pgserver_bindir()
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def require_pg_bindir(engine: str = "system") -> Path:
    found = find_pg_bindir(engine)
    if not found and engine == "embedded":
        raise MissingDependency(
            "`pgserver` (the embedded PostgreSQL) is not installed; install it "
            "(pip install 'iotctl[embedded]') or install PostgreSQL (apt-get install postgresql) and set "
            "IOTCTL_ENGINE=system."
        )
    if found and engine == "embedded" and not reachable_by_postgres(found):
        raise OperationFailed(
            f"The `postgres` user cannot reach `{found}` (a parent directory is private); install the "
            "virtualenv outside /root or run as a non-root user."
        )
    if not found:
        raise MissingDependency(
            "`pg_ctl` (PostgreSQL server) not found; install it (apt-get install postgresql) "
            "or set IOTCTL_ENGINE=embedded."
        )
    return found


def _as_postgres_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", SUPERUSER, "--"]


def reachable_by_postgres(path: Path) -> bool:
    """Whether the ``postgres`` user can traverse every parent of ``path`` (needed when we run as root)."""
    if os.geteuid() != 0:
        return True
    # Every existing parent needs the "others may traverse" bit (o+x).
    return all(os.stat(parent).st_mode & 0o001 for parent in Path(path).resolve().parents if parent.exists())


def _chown_to_postgres(path: Path) -> None:
    if os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise MissingDependency(
            "Running as root needs the `postgres` system user to run PostgreSQL; create it "
            "(useradd --system --no-create-home postgres), install the postgresql package, "
            "or run as a non-root user."
        ) from None
    os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class PostgresServer:
    directory: Path
    port: int
    host: str = "127.0.0.1"
    fsync: bool = True
    extra_settings: dict[str, str] = field(default_factory=dict)
    #: "system" (Debian's binaries) or "embedded" (the binaries inside the pip package ``pgserver``).
    engine: str = "system"

    def __post_init__(self):
        self.directory = Path(self.directory)
        self.data_dir = self.directory / "data"
        self.socket_dir = self.data_dir  # private: inside the 0700 data dir
        self.log_file = self.directory / "postgres.log"

    # -- helpers
    def _run(self, argv: list[str], what: str, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            _as_postgres_user() + argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            reason = self._last_fatal() or (detail[-1] if detail else f"exit {proc.returncode}")
            raise OperationFailed(f"`{what}` failed ({reason}); see `{self.log_file}`.")
        return proc

    def _last_fatal(self) -> str | None:
        """The server's last FATAL/PANIC line (pg_ctl itself only says "Examine the log output.")."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 65536))
                lines = log.read().decode(errors="replace").splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            for level in ("FATAL:", "PANIC:"):
                if level in line:
                    return line.split(level, 1)[1].strip()[:200]
        return None

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    @property
    def lock_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    def pid(self) -> int | None:
        """The pid of the postmaster running on this data directory, or None.

        After a crash ``postmaster.pid`` stays behind naming a dead pid, a zombie its parent has not reaped yet, or
        a pid since reused by another process: none of those is a running server (`stack status` says stopped,
        and `start` clears the file)."""
        lock = LockFile.read(self.lock_file)
        if lock is None or not procs.pid_alive(lock.pid):
            return None
        cwd = procs.process_cwd(lock.pid)  # a postmaster works in its data directory
        if cwd is not None and cwd != self.data_dir.resolve():
            return None
        return lock.pid

    def superuser_conninfo(self, dbname: str = "postgres") -> str:
        """libpq conninfo for the superuser over the private socket (no password)."""
        return f"host={self.socket_dir} port={self.port} user={SUPERUSER} dbname={dbname}"

    # -- lifecycle
    def init(self) -> None:
        if self.initialised:
            return
        bindir = require_pg_bindir(self.engine)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not reachable_by_postgres(self.directory):
            raise OperationFailed(
                f"The `postgres` user cannot reach `{self.directory}` (a parent directory is private); "
                "choose a state directory outside /root, e.g. IOTCTL_STATE_DIR=/var/lib/iotctl."
            )
        _chown_to_postgres(self.directory)
        self.log_file.touch(mode=0o600)
        _chown_to_postgres(self.log_file)
        self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            "initdb",
        )

    def _settings(self) -> dict[str, str]:
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "on" if self.fsync else "off",
            "synchronous_commit": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
            # Room for concurrent provisioning (each provision holds one connection for its advisory lock and
            # transaction) beside the ingest's and config server's pools: 50 provisions at once exhausted 50 slots.
            "max_connections": "200",
            "shared_buffers": "128MB",
            "log_min_messages": "warning",
        }
        settings.update(self.extra_settings)
        return settings

    def clear_crashed_lock(self, timeout: float = CRASH_CLEANUP_TIMEOUT) -> bool:
        """Remove the ``postmaster.pid`` of a server that died; True if there was one.

        PostgreSQL removes such a file itself when its pid is gone, but refuses to start ("lock file
        "postmaster.pid" already exists") while the pid still exists: a zombie not reaped yet (an init that reaps
        late: seen for 1.5 s here) or a pid reused since. Once no process is attached to the dead server's shared
        memory (its backends exit as soon as they notice; waited for up to ``timeout``) the file is stale and safe
        to remove: PostgreSQL's own check of that segment would refuse to start otherwise. The lock files of the
        sockets (``.s.PGSQL.<port>.lock`` in the private socket dir) name the same dead pid and go too."""
        lock = LockFile.read(self.lock_file)
        if lock is None or self.pid():
            return False
        deadline = time.monotonic() + timeout
        while lock.shmid is not None and (attached := procs.shm_attached(lock.shmid)):
            if time.monotonic() >= deadline:
                raise OperationFailed(
                    f"{attached} process(es) of the PostgreSQL server that died in `{self.data_dir}` (postmaster pid "
                    f"{lock.pid}) still hold its shared memory after {timeout:g} s; stop the leftover `postgres:` "
                    "processes and run `iotctl stack up` again."
                )
            time.sleep(0.05)
        for socket_lock in self.socket_dir.glob(".s.PGSQL.*.lock"):  # a private socket dir: ours alone
            socket_lock.unlink(missing_ok=True)
        self.lock_file.unlink(missing_ok=True)
        return True

    def start(self, timeout: float = 30.0) -> int:
        pid = self.pid()
        if pid:
            return pid
        self.init()
        self.clear_crashed_lock()
        bindir = require_pg_bindir(self.engine)
        options = " ".join(f"-c {k}={v}" for k, v in self._settings().items())
        self._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            "pg_ctl start",
            timeout=timeout + 10,
        )
        pid = self.pid()
        if not pid:
            raise OperationFailed(f"`postgres` did not start; see `{self.log_file}`.")
        procs.wait_for_port(self.host, self.port, timeout, "postgres", self.log_file)
        return pid

    def stop(self, mode: str = "fast", timeout: float = 30.0) -> bool:
        if not self.pid():
            return False
        bindir = require_pg_bindir(self.engine)
        self._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                mode,
                "-w",
                "-t",
                str(int(timeout)),
                "stop",
            ],
            "pg_ctl stop",
            timeout=timeout + 10,
        )
        return True

    def ensure_database(self, dbname: str, owner: str, password: str) -> None:
        """Create role ``owner`` (password set via a parameter, never on a command line) and database."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.superuser_conninfo(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            # The password travels inside the protocol to a private socket, hashed by the server (SCRAM).
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                    sql.SQL(verb), sql.Identifier(owner), sql.Literal(password)
                )
            )
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(owner))
                )
