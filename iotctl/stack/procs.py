"""Start and stop daemon processes by pid file; wait for TCP ports.

Process state (alive, zombie, command line, working directory) comes from psutil, not from reading /proc by hand.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from iotctl.errors import OperationFailed

# Daemons outlive the Popen objects that started them (`stack up` exits, they keep running); holding the objects
# here keeps Python from warning that a child is "still running" when they are garbage-collected.
_children: list[subprocess.Popen] = []


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """``n`` different free ports (a stack needs several at once)."""
    ports: set[int] = set()
    for _ in range(50 * n):
        ports.add(free_port())
        if len(ports) == n:
            return sorted(ports)
    raise OperationFailed(f"Could not find {n} distinct free TCP ports; free some ports and retry.")


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float, what: str, log: Path | None = None, pid: int | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if pid is not None and not pid_alive(pid):
            break
        time.sleep(0.05)
    tail = ""
    if log is not None and log.exists():
        tail = " Last log line: " + (log.read_text(errors="replace").strip().splitlines() or [""])[-1][:200]
    raise OperationFailed(f"`{what}` did not start listening on {host}:{port}; see `{log}`.{tail}")


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not; a zombie child of ours is reaped)."""
    for proc in _children:
        if proc.pid == pid:
            return proc.poll() is None  # our own child: Popen reaps it and records the exit
    try:
        status = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    if status != psutil.STATUS_ZOMBIE:
        return True
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is ours
    return False


def process_cwd(pid: int) -> Path | None:
    """The working directory of process ``pid``, or None when it cannot be read (gone, another user's process
    without privileges)."""
    try:
        return Path(psutil.Process(pid).cwd())
    except (psutil.Error, OSError):
        return None


def shm_attached(shmid: int) -> int:
    """How many processes are attached to System V shared memory segment ``shmid`` (0 when it is gone, or when
    /proc/sysvipc/shm cannot be read).  psutil does not cover System V IPC, hence the one /proc read left here."""
    try:
        header, *rows = Path("/proc/sysvipc/shm").read_text().splitlines()
    except (OSError, ValueError):
        return 0
    columns = header.split()
    try:
        id_at, nattch_at = columns.index("shmid"), columns.index("nattch")
    except ValueError:
        return 0
    for row in rows:
        fields = row.split()
        if len(fields) > max(id_at, nattch_at) and fields[id_at] == str(shmid):
            return int(fields[nattch_at])
    return 0


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(Path(pid_file).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def read_pid_of(pid_file: Path, marker: str) -> int | None:
    """The live pid in ``pid_file`` if its command line mentions ``marker``; a pid file naming some other process
    (the pid was reused after a crash) counts as stopped."""
    pid = read_pid(pid_file)
    if pid is None:
        return None
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.NoSuchProcess:
        return None
    except (psutil.Error, OSError):
        return pid  # not readable (another user's process): trust the pid file
    return pid if marker in cmdline else None


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    pid_file: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start ``argv`` in its own session, output appended to ``log``; record its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    _children.append(proc)
    if pid_file is not None:
        Path(pid_file).write_text(f"{proc.pid}\n")
    return proc


def stop_pid(pid: int, timeout: float = 10.0, sig: int = signal.SIGTERM) -> bool:
    """Send ``sig``, wait up to ``timeout`` for exit, then SIGKILL. True if it was running."""
    if not pid_alive(pid):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


class PidFileDaemon:
    """For a daemon known by its pid file: subclasses provide ``pid()``, ``pid_file`` and ``daemon_name``."""

    daemon_name = "daemon"
    pid_file: Path

    def pid(self) -> int | None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM, wait, SIGKILL after ``timeout``; False if it was not running."""
        pid = self.pid()
        if not pid:
            return False
        stop_pid(pid, timeout)
        if pid_alive(pid):
            raise OperationFailed(f"`{self.daemon_name}` (pid {pid}) did not stop; kill it by hand.")
        self.pid_file.unlink(missing_ok=True)
        return True
