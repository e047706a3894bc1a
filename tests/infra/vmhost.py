"""One booted Debian 12, converged into the whole platform once per test session, for every test that needs it.

Booting and converging a host is most of the infrastructure tests' time, so tests/infra/ansible/test_converge.py
(what the playbook leaves behind) and tests/infra/deploy/test_vm_host.py (`iotctl deploy vm --host` end to end)
assert against the same host, made by the session fixture ``converged_host`` (tests/infra/conftest.py):

1. **Root file system**: ``debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,python3 bookworm``,
   cached under ``$XDG_CACHE_HOME/iotctl-test`` (``~/.cache/iotctl-test``) in a directory keyed by the suite, the
   variant, the package list and the mirror, so a change to any of them builds a new one.
2. **Boot** a copy with systemd as PID 1::

       systemd-nspawn -D COPY -M NAME --register=no --keep-unit --console=passive -b

   (``--register=no --keep-unit``: this machine has no systemd to register with). The container shares this
   machine's network namespace, so its services listen on this machine's loopback: the tests give them free ports.
   Its /var/cache/apt/archives is a bind mount of ``~/.cache/iotctl-test/apt-archives-bookworm``: the packages the
   playbook installs are downloaded once, not on every run (apt still checks them against the signed index).
3. **An Azure-like admin login**: Debian's OpenSSH server on a free loopback port, an admin user ``iots6admin``
   with passwordless sudo (what Azure's provisioning gives ``admin_username``) and a key made for the test. So
   Ansible takes the path it takes for a real VM: SSH with pipelining, ``become`` through sudo.
4. **First converge** of the fresh host: ``iotctl.deploy.ansible.converge`` (probe, bundle, playbook) with exactly
   what ``iotctl deploy vm --env vmtest --host iots6admin@127.0.0.1:PORT`` passes it (the deployment's secrets and
   bundle directories, :class:`~iotctl.deploy.vm.HostTarget`'s SSH inventory, ``playbook_variables``), plus an
   artifact directory, so tests read Ansible's whole output.
5. **Second converge**: that ``iotctl deploy vm --host`` command itself, through the CLI. It must change nothing
   (the playbook's idempotence), then runs its end-to-end check (a reading over TLS into the database) and
   registers the environment. Ansible's log of this run goes to ``artifacts/deploy/ansible.log``.

Off for the container (extra vars): the host firewall would load into this machine's network namespace, and
Grafana's and Timescale's apt repositories are unreachable from here. Timings go to test-artifacts/vm-host.json.

Tests may change the host (rotate secrets and re-run, restart the broker, back up) as long as they leave it
working and its secrets on the controller current. It is stopped by pid at the end of the session (poweroff
through its systemd, then SIGKILL if it hangs), whatever happened.

Needs root, ``debootstrap``, ``systemd-nspawn`` and ``ssh`` (scripts/install-system.sh installs them): without
them the tests skip locally and fail in CI (CI=true), so a missing tool is never a silent hole there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.missing import missing

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3")
MIRROR = "http://deb.debian.org/debian"
REPO = Path(__file__).resolve().parents[2]
#: The environment `iotctl deploy vm` registers for the host, and its admin login (Azure's default name).
ENV = "vmtest"
ADMIN = "iots6admin"


def require_tools(*extra: str) -> None:
    """Skip (locally) or fail (CI) when this machine cannot boot a container (tests/missing.py)."""
    absent = [tool for tool in ("debootstrap", "systemd-nspawn", "nsenter", *extra) if not shutil.which(tool)]
    if os.geteuid() != 0:
        missing("booting a Debian container needs root (debootstrap, systemd-nspawn)")
    if absent:
        missing(f"{', '.join(absent)} missing; run scripts/install-system.sh (as root)")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "iotctl-test"


def rootfs_key() -> str:
    spec = "|".join([SUITE, VARIANT, ",".join(PACKAGES), MIRROR])
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def _rootfs_home() -> Path:
    return cache_dir() / f"debian-{SUITE}-{VARIANT}-{rootfs_key()}"


def rootfs_cached() -> bool:
    return (_rootfs_home() / "rootfs" / "usr" / "bin" / "python3").exists()


#: debootstrap processes running now (the background build's included), stopped by pid if the session ends first.
_DEBOOTSTRAPS: set[subprocess.Popen] = set()


def ensure_rootfs() -> tuple[Path, float]:
    """The cached root file system (built when missing, under a lock); returns it and the seconds spent."""
    home = _rootfs_home()
    rootfs = home / "rootfs"
    home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not rootfs_cached():
            partial = home / f"rootfs.partial-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            log = home / "debootstrap.log"
            argv = ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}", SUITE, str(partial)]
            with open(log, "w") as out:
                proc = subprocess.Popen(
                    [*argv, MIRROR],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                _DEBOOTSTRAPS.add(proc)
                try:
                    proc.wait(timeout=900)
                except subprocess.TimeoutExpired:
                    _stop_group(proc)
                finally:
                    _DEBOOTSTRAPS.discard(proc)
            if proc.returncode != 0:
                shutil.rmtree(partial, ignore_errors=True)
                pytest.fail(f"debootstrap failed (exit {proc.returncode}); see {log}")
            shutil.rmtree(rootfs, ignore_errors=True)
            os.rename(partial, rootfs)
    return rootfs, time.monotonic() - started


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process started with its own session, and everything in that session's process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


_PREFETCH: list[threading.Thread] = []


def prefetch_rootfs() -> None:
    """Start building the cached root file system in the background when it is missing (debootstrap takes 1-2
    minutes on a fresh machine), so it overlaps the tests that run before the first one that boots it.

    Only where it can succeed (root, debootstrap present); a failure here is not reported: the fixture then runs
    debootstrap itself and fails with the log's path."""
    if _PREFETCH or rootfs_cached() or os.geteuid() != 0 or not shutil.which("debootstrap"):
        return

    def build() -> None:
        with contextlib.suppress(BaseException):  # pytest.fail raises an outcome (a BaseException)
            ensure_rootfs()

    thread = threading.Thread(target=build, name="rootfs-prefetch", daemon=True)
    _PREFETCH.append(thread)
    thread.start()


def stop_prefetch() -> None:
    """At the end of the session: stop a debootstrap still running (by pid), so none outlives the tests."""
    for proc in list(_DEBOOTSTRAPS):
        _stop_group(proc)
    for thread in _PREFETCH:
        thread.join(timeout=60)


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
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
        if check and done.returncode != 0:
            output = (done.stderr or done.stdout).strip()[-2000:]
            raise AssertionError(f"`{' '.join(argv)}` in the container exited {done.returncode}: {output}")
        return done

    def apt_get(self, *args: str, timeout: float = 600) -> None:
        """``apt-get -q ARGS`` in the container, waiting while another container holds the shared archive cache's
        lock (tests of other sessions on this machine bind-mount the same cache)."""
        deadline = time.monotonic() + timeout
        argv = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-o", "DPkg::Lock::Timeout=300", *args]
        while True:
            done = self.run(argv, check=False, timeout=timeout)
            if done.returncode == 0:
                return
            busy = "Could not get lock" in done.stderr or "Unable to lock" in done.stderr
            if not busy or time.monotonic() > deadline:
                stderr = done.stderr.strip()[-2000:]
                raise AssertionError(f"`apt-get {' '.join(args)}` in the container failed: {stderr}")
            time.sleep(2)

    def psql(self, pg_port: int, sql: str, database: str = "iots6") -> str:
        """A query run inside the container as PostgreSQL's superuser (peer authentication on the socket)."""
        argv = ["runuser", "-u", "postgres", "--", "psql", "-X", "-p", str(pg_port), "-d", database, "-Atc", sql]
        return self.run(argv).stdout.strip()

    def stop(self, timeout: float = 15) -> None:
        """Stop the container: SIGKILL its systemd (PID 1 of its pid namespace, so the kernel kills every process
        in it), then wait for systemd-nspawn to exit; SIGKILL what is left after ``timeout``. Never raises.

        Nothing in a throw-away container needs an orderly shutdown, which takes 10-30 s here (each unit's stop,
        then systemd-shutdown's wait for processes to leave)."""
        if self.proc is None:
            return
        if self.proc.poll() is None and self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
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


def open_ssh(vm: BootedDebian, key: Path, port: int, user: str = ADMIN) -> None:
    """OpenSSH in the container on 127.0.0.1:PORT (configured before the package starts it), ``user`` logging in by
    key only and becoming root with sudo, no password: what Azure's provisioning gives a VM's admin user."""
    vm.run(["mkdir", "-p", "/etc/ssh/sshd_config.d"])
    conf = f"Port {port}\nListenAddress 127.0.0.1\nPermitRootLogin no\nPasswordAuthentication no\n"
    (vm.root / "etc/ssh/sshd_config.d/10-iotctl-test.conf").write_text(conf)
    vm.run(["useradd", "--create-home", "--shell", "/bin/bash", user])
    home = f"/home/{user}/.ssh"
    vm.run(["install", "-d", "-m", "0700", "-o", user, "-g", user, home])
    (vm.root / home.lstrip("/") / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    vm.run(["chown", f"{user}:{user}", f"{home}/authorized_keys"])
    vm.run(["chmod", "0600", f"{home}/authorized_keys"])
    vm.apt_get("update")
    vm.apt_get("install", "-y", "--no-install-recommends", "openssh-server", "sudo")
    sudoers = vm.root / "etc/sudoers.d/90-iotctl-test"
    sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    vm.run(["systemctl", "restart", "ssh.service"])
    deadline = time.monotonic() + 30
    probe = ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"]
    probe += ["-o", "UserKnownHostsFile=/dev/null", f"{user}@127.0.0.1", "sudo", "-n", "true"]
    while subprocess.run(probe, capture_output=True, timeout=30).returncode != 0:
        assert time.monotonic() < deadline, f"sshd in the container did not let `{user}` in with the test key and sudo"
        time.sleep(0.5)


@dataclass
class ConvergedHost:
    """The converged host and everything the tests need to reach it (no secret values: files under ``secrets``)."""

    vm: BootedDebian
    state_dir: Path  # IOTCTL_STATE_DIR of the deploy: the deployment and the registered environment live there
    ssh_port: int
    ports: dict[str, int]  # tls, local, pg, config, ingest, https
    secrets: Path  # the deployment's secrets directory (the playbook's iots6_secrets_dir)
    inventory: dict[str, Any]  # the deploy's SSH inventory
    extravars: dict[str, Any]  # everything the deploy passes the playbook (secrets dir and bundles included)
    first: Any  # iotctl.deploy.ansible.PlaybookResult of the first converge
    artifacts: Path  # Ansible's output: first/ (ansible-runner's artifacts), deploy/ansible.log, …
    deploy_args: list[str]  # `iotctl deploy vm --env vmtest --host …` (without --json)
    deploy: dict[str, Any] = field(default_factory=dict)  # its --json: the second converge, the check, the env
    deploy_output: str = ""  # its stdout and stderr (stderr lists each task that changed)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def cli_env(self) -> dict[str, str]:
        return {"IOTCTL_STATE_DIR": str(self.state_dir), "NO_COLOR": "1"}

    @property
    def deploy_changed_tasks(self) -> list[str]:
        """The tasks the deploy's converge reported as changed (its progress lines on stderr)."""
        return changed_tasks(self.deploy_output)

    def redeploy(self, name: str, *extra_args: str):
        """``iotctl deploy vm`` again, with the session's arguments (and ``extra_args``); Ansible's log goes to
        ``artifacts/<name>/ansible.log``. Returns the CliRunner result (exit code 0 asserted)."""
        from typer.testing import CliRunner

        from iotctl.cli.main import app

        log = self.artifacts / name / "ansible.log"
        log.parent.mkdir(parents=True)
        env = {**self.cli_env, "ANSIBLE_LOG_PATH": str(log)}
        result = CliRunner().invoke(app, [*self.deploy_args, *extra_args], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    def secret(self, name: str) -> str:
        return (self.secrets / name).read_text().strip()

    @property
    def ca(self) -> str:
        return str(self.secrets / "tls-ca-crt")

    def psql(self, sql: str, database: str = "iots6") -> str:
        return self.vm.psql(self.ports["pg"], sql, database)

    def ansible_output(self) -> str:
        """Everything Ansible printed in the session's runs so far (ansible-runner's stdout files, the deploy's log)."""
        files = sorted(p for p in self.artifacts.rglob("*") if p.is_file() and p.name in ("stdout", "ansible.log"))
        return "".join(p.read_text(errors="replace") for p in files)


def changed_tasks(output: str) -> list[str]:
    """The tasks `iotctl deploy vm` reported as changed in a pipe (``  changed: TASK`` on stderr)."""
    return [line.split("changed: ", 1)[1] for line in output.splitlines() if line.startswith("  changed: ")]


@contextlib.contextmanager
def converge_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConvergedHost]:
    """Boot, open SSH, converge (library), deploy (CLI); yield the host; power it off."""
    from iotctl.deploy import ansible as deploy_ansible
    from iotctl.deploy import vm as deploy_vm
    from iotctl.stack.procs import free_ports

    require_tools("ssh", "ssh-keygen")
    timings: dict[str, float] = {}
    t = time.monotonic()
    rootfs, _ = ensure_rootfs()
    timings["rootfs_s"] = time.monotonic() - t
    # Downloaded .deb files outlive the container (like a local apt proxy would), so later runs fetch less.
    archives = cache_dir() / f"apt-archives-{SUITE}"
    archives.mkdir(parents=True, exist_ok=True)
    work = tmp_path_factory.mktemp("vm-host")
    vm = BootedDebian(rootfs, tmp_path_factory.mktemp("vm"), apt_archives=archives)
    try:
        t = time.monotonic()
        vm.boot()
        timings["boot_s"] = time.monotonic() - t
        key = work / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        ssh_port, *free = free_ports(7)
        ports = dict(zip(["tls", "local", "pg", "config", "ingest", "https"], free, strict=True))
        t = time.monotonic()
        open_ssh(vm, key, ssh_port)
        timings["ssh_s"] = time.monotonic() - t

        extra = {
            # The container shares this machine's network namespace: never load its firewall here.
            "iots6_firewall_active": False,
            # Their apt repositories are unreachable from here.
            "iots6_grafana_enabled": False,
            "iots6_postgresql_timescaledb_enabled": False,
            # Free ports, so the services clash neither with this machine's nor with parallel tests'.
            "iots6_mosquitto_tls_port": ports["tls"],
            "iots6_mosquitto_local_port": ports["local"],
            "iots6_postgresql_port": ports["pg"],
            "iots6_config_server_port": ports["config"],
            "iots6_ingest_http_port": ports["ingest"],
            "iots6_proxy_https_port": ports["https"],
        }
        state = work / "state"
        host_spec, ssh_from = f"{ADMIN}@127.0.0.1:{ssh_port}", "127.0.0.1/32"
        artifacts = work / "artifacts"

        # 1st converge: what `deploy vm --host` does up to Ansible (iotctl.deploy.vm.deploy/configure), with artifacts.
        deployment = deploy_vm.Deployment(state, ENV)
        deployment.make()
        target = deploy_vm.HostTarget.parse(host_spec, key_file=key)
        variables = deploy_vm.playbook_variables(target, deploy_vm.operator_cidr_for(target, ssh_from), extra)
        deploy_vm.ensure_secrets(deployment, target)
        inventory = target.inventory(deployment.known_hosts)
        t = time.monotonic()
        first = deploy_ansible.converge(
            inventory,
            secrets_dir=deployment.secrets_dir,
            bundle_dir=deployment.bundles_dir,
            extravars=variables,
            artifact_dir=artifacts / "first",
            timeout=3600,
        )
        timings["first_converge_s"] = time.monotonic() - t
        tars = deployment.bundles_dir.glob("iots6-app-*.tar")
        bundles = {p.name[len("iots6-app-") : -len(".tar")]: str(p) for p in tars}
        extravars = {
            "iots6_secrets_dir": str(deployment.secrets_dir.resolve()),
            "iots6_app_bundles": bundles,
            **variables,
        }

        # 2nd converge: the command itself, on the converged host (idempotence, the end-to-end check, registration).
        extra_file = work / "extra.json"
        extra_file.write_text(json.dumps(extra))
        args = ["deploy", "vm", "--env", ENV, "--host", host_spec, "--ssh-key", str(key), "--ssh-from", ssh_from]
        args += ["--extra-vars", str(extra_file)]
        host = ConvergedHost(
            vm=vm,
            state_dir=state,
            ssh_port=ssh_port,
            ports=ports,
            secrets=deployment.secrets_dir,
            inventory=inventory,
            extravars=extravars,
            first=first,
            artifacts=artifacts,
            deploy_args=args,
            timings=timings,
        )
        t = time.monotonic()
        deployed = host.redeploy("deploy", "--json")
        timings["deploy_s"] = time.monotonic() - t
        host.deploy, host.deploy_output = json.loads(deployed.stdout), deployed.output

        record = {k: round(v, 1) for k, v in timings.items()}
        record["first_converge"] = first.as_dict()["hosts"]
        record["deploy_converge"] = host.deploy["playbook"]["hosts"]
        (REPO / "test-artifacts").mkdir(exist_ok=True)
        (REPO / "test-artifacts" / "vm-host.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"\nconverged host timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
        yield host
    finally:
        vm.stop()
        vm.remove()
