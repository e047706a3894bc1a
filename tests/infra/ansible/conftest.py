"""A booted Debian 12 for the Ansible converge test: debootstrap once (cached), systemd-nspawn per test module.

The root file system is ``debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,python3 bookworm``,
cached under ``$XDG_CACHE_HOME/iotctl-test`` (``~/.cache/iotctl-test``) in a directory keyed by the suite, the
variant, the package list and the mirror, so a change to any of them builds a new one. Each test module copies it
and boots the copy with systemd as PID 1:

    systemd-nspawn -D COPY -M NAME --register=no --keep-unit --console=passive -b

(``--register=no --keep-unit``: this machine has no systemd to register with). The container shares this
machine's network namespace, so its services listen on this machine's loopback: the tests give them free ports.
Ansible reaches it with the ``community.docker.nsenter`` connection (``ansible_nsenter_pid`` = its systemd's pid).
It is stopped by pid at the end (poweroff through its systemd, then SIGKILL if it hangs), whatever happened.
Its /var/cache/apt/archives is a bind mount of ``~/.cache/iotctl-test/apt-archives-bookworm``: the packages the
playbook installs are downloaded once, not on every run (apt still checks them against the signed index).

Needs root, ``debootstrap`` and ``systemd-nspawn`` (scripts/install-system.sh installs both): without them the
tests skip locally and fail in CI (CI=true), so a missing tool is never a silent hole there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3")
MIRROR = "http://deb.debian.org/debian"


def require_tools() -> None:
    """Skip (locally) or fail (CI=true) when this machine cannot boot a container."""
    missing = [tool for tool in ("debootstrap", "systemd-nspawn", "nsenter") if not shutil.which(tool)]
    problem = None
    if os.geteuid() != 0:
        problem = "the converge test needs root (debootstrap, systemd-nspawn)"
    elif missing:
        problem = f"{', '.join(missing)} missing; run scripts/install-system.sh (as root)"
    if problem:
        missing(problem)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "iotctl-test"


def rootfs_key() -> str:
    spec = "|".join([SUITE, VARIANT, ",".join(PACKAGES), MIRROR])
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def ensure_rootfs() -> tuple[Path, float]:
    """The cached root file system (built when missing, under a lock); returns it and the seconds spent."""
    home = cache_dir() / f"debian-{SUITE}-{VARIANT}-{rootfs_key()}"
    rootfs = home / "rootfs"
    home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (rootfs / "usr" / "bin" / "python3").exists():
            partial = home / f"rootfs.partial-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            log = home / "debootstrap.log"
            with open(log, "w") as out:
                proc = subprocess.run(
                    [
                        "debootstrap",
                        f"--variant={VARIANT}",
                        f"--include={','.join(PACKAGES)}",
                        SUITE,
                        str(partial),
                        MIRROR,
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=900,
                )
            if proc.returncode != 0:
                shutil.rmtree(partial, ignore_errors=True)
                pytest.fail(f"debootstrap failed (exit {proc.returncode}); see {log}")
            shutil.rmtree(rootfs, ignore_errors=True)
            os.rename(partial, rootfs)
    return rootfs, time.monotonic() - started


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


class BootedDebian:
    """A copy of the root file system booted with systemd-nspawn; ``pid`` is its systemd (PID 1 inside)."""

    def __init__(self, rootfs: Path, workdir: Path, apt_archives: Path | None = None):
        self.name = f"iots6-test-{uuid.uuid4().hex[:8]}"
        self.root = workdir / "root"
        self.log = workdir / "nspawn.log"
        subprocess.run(["cp", "-a", "--reflink=auto", str(rootfs), str(self.root)], check=True)
        (self.root / "etc" / "hostname").write_text("iots6-vm\n")
        self.apt_archives = apt_archives
        self.proc: subprocess.Popen | None = None
        self.pid = 0

    def boot(self, timeout: float = 90) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "-D",
                    str(self.root),
                    "-M",
                    self.name,
                    "--register=no",
                    "--keep-unit",
                    "--console=passive",
                    *([f"--bind={self.apt_archives}:/var/cache/apt/archives"] if self.apt_archives else []),
                    "-b",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.pid:
            children = _children(self.proc.pid)
            if children:
                self.pid = children[0]
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"systemd-nspawn did not start a container; see {self.log}")
            else:
                time.sleep(0.1)
        state = ""
        while time.monotonic() < deadline:
            state = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the container's systemd did not finish booting (state `{state}`); see {self.log}")

    def run(self, argv: list[str], check: bool = True, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        """Run a command inside the container (its mount, pid, ipc and uts namespaces; the shared network)."""
        cmd = ["nsenter", f"--target={self.pid}", "--mount", "--pid", "--ipc", "--uts", "--net", "--", *argv]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout, **kwargs)

    def stop(self, timeout: float = 30) -> None:
        """Power the container off through its systemd; SIGKILL what is left after ``timeout``. Never raises."""
        if self.proc is None:
            return
        if self.proc.poll() is None and self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGRTMIN + 3)  # systemd: halt/poweroff
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                for pid in reversed(_descendants(self.proc.pid)):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def debian_vm(tmp_path_factory) -> Iterator[BootedDebian]:
    require_tools()
    rootfs, _ = ensure_rootfs()
    # Downloaded .deb files outlive the container (like a local apt proxy would), so later runs fetch less.
    archives = cache_dir() / f"apt-archives-{SUITE}"
    archives.mkdir(parents=True, exist_ok=True)
    vm = BootedDebian(rootfs, tmp_path_factory.mktemp("vm"), apt_archives=archives)
    try:
        vm.boot()
        yield vm
    finally:
        vm.stop()
        vm.remove()
