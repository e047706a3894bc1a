"""The native stack's Python services (the ingest and the config server): what each runs with, and running it.

Each is ``python -m <module>`` of the ``iots6-platform`` distribution, configured by env vars (secrets as
``*_FILE`` paths, never values), logging to ``<state_dir>/logs/<name>.log``, its pid in ``<state_dir>/run``.
``up`` waits for ``/healthz`` to answer 200; ``down`` sends SIGTERM (the ingest flushes its buffer first) and
SIGKILL after the service's stop timeout.  When a package is not installed its component is reported as
``absent`` (never as running) and not started.

``NativeServices.services`` and ``_service_env`` build the services' environment from the services' own settings
definition (``iots6_platform.core.settings``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from iotctl.broker.accounts import ROLE_CONFIG, ROLE_INGEST, service_username
from iotctl.errors import OperationFailed
from iotctl.settings import Settings
from iotctl.stack import procs
from iotctl.stack.engines import BIND
from iotctl.stack.layout import DB_NAME, DB_OWNER, StackLayout

INGEST, CONFIG_SERVER = "ingest", "config-server"
INGEST_CLIENT_ID = "iots6-ingest-1"
#: The ingest flushes its buffer to the database on SIGTERM; give it this long before SIGKILL.
INGEST_STOP_TIMEOUT = 30.0
HEALTH_TIMEOUT = 30.0
_PORT_ENV = {"ingest": "IOTCTL_INGEST_HEALTH_PORT", "config-server": "IOTCTL_CONFIG_PORT"}


@dataclass(frozen=True)
class ServiceSpec:
    """A Python service of this repository run as ``python -m <module>`` with env-var configuration."""

    name: str  # component name
    module: str
    port: int
    env: dict[str, str]
    stop_timeout: float = 10.0

    @property
    def health_url(self) -> str:
        return f"http://{BIND}:{self.port}/healthz"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", self.module]


def service_available(module: str) -> bool:
    """Whether ``python -m module`` can run: the package and its ``__main__`` are importable."""
    try:
        return importlib.util.find_spec(module + ".__main__") is not None
    except (ImportError, ValueError):
        return False


def _service_env(extra: dict[str, str]) -> dict[str, str]:
    from iots6_platform.core.settings import SERVICES

    # Inherit PATH and friends, but never a stray INGEST_*/CONFIG_SERVER_*/MIGRATE_* from the caller's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith(tuple(c.prefix() for c in SERVICES.values()))}
    env.update(extra)
    return env


class NativeServices:
    """The Python services of one state directory; ``engine_of()`` names the stack's engine (the embedded
    broker speaks MQTT 3.1.1 only, so the services' protocol follows it)."""

    def __init__(self, settings: Settings, layout: StackLayout, engine_of: Callable[[], str]):
        self.settings = settings
        self.layout = layout
        self._engine = engine_of

    @property
    def db_url(self) -> str:
        return f"postgresql://{DB_OWNER}@{BIND}:{self.settings.pg_port}/{DB_NAME}"

    def log_file(self, name: str) -> Path:
        return self.layout.logs_dir / f"{name}.log"

    def _pid_file(self, name: str) -> Path:
        return self.layout.run_dir / f"{name}.pid"

    def services(self, engine: str | None = None) -> list[ServiceSpec]:
        from iots6_platform.core.settings import ConfigServerSettings, IngestSettings

        s, layout = self.settings, self.layout
        # amqtt (the embedded broker) speaks MQTT 3.1.1 only: a persistent session (clean_session=False), plain
        # subscription.
        protocol = "3.1.1" if (engine or self._engine()) == "embedded" else "5"
        # The variables' names, types and ranges come from the services' own definition (checked here).
        ingest_env = IngestSettings.env(
            mqtt_host=BIND,
            mqtt_port=s.mqtt_port,
            mqtt_username=service_username(ROLE_INGEST),
            mqtt_password_file=layout.secret(ROLE_INGEST),
            database_url=self.db_url,
            database_password_file=layout.secret("db"),
            topic_base=s.topic_base,
            http_port=s.ingest_health_port,
            client_id=INGEST_CLIENT_ID,
            mqtt_protocol=protocol,
        )
        config_env = ConfigServerSettings.env(
            bind=BIND,
            port=s.config_port,
            database_url=self.db_url,
            database_password_file=layout.secret("db"),
            admin_token_file=layout.secret("admin-token"),
            mqtt_host=BIND,
            mqtt_port=s.mqtt_port,
            mqtt_username=service_username(ROLE_CONFIG),
            mqtt_password_file=layout.secret(ROLE_CONFIG),
            topic_base=s.topic_base,
            mqtt_protocol=protocol,
        )
        # Temporary files (the config server's per-worker metrics) stay under the state dir too, one directory per
        # service, emptied before it starts (a killed service leaves its files behind).
        ingest_env["TMPDIR"] = str(self._tmp_dir(INGEST))
        config_env["TMPDIR"] = str(self._tmp_dir(CONFIG_SERVER))
        return [
            ServiceSpec(INGEST, "iots6_platform.ingest", s.ingest_health_port, ingest_env, INGEST_STOP_TIMEOUT),
            ServiceSpec(CONFIG_SERVER, "iots6_platform.config_server", s.config_port, config_env),
        ]

    def _tmp_dir(self, name: str) -> Path:
        return self.layout.run_dir / "tmp" / name

    def pid(self, spec: ServiceSpec) -> int | None:
        """The live pid of ``spec``; a pid file naming some other process (pid reuse) counts as stopped."""
        return procs.read_pid_of(self._pid_file(spec.name), spec.module)

    def start(self, spec: ServiceSpec) -> int:
        log = self.log_file(spec.name)
        if procs.port_open(BIND, spec.port):
            raise OperationFailed(
                f"Port {spec.port} for `{spec.name}` is already in use by another program; stop it or choose "
                f"another port ({_PORT_ENV[spec.name]})."
            )
        tmp = self._tmp_dir(spec.name)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True, mode=0o700)
        proc = procs.spawn(
            spec.argv(),
            log=log,
            pid_file=self._pid_file(spec.name),
            env=_service_env(spec.env),
            cwd=self.layout.state_dir,
        )
        try:
            wait_healthy(spec.health_url, HEALTH_TIMEOUT, spec.name, log, proc.pid)
        except OperationFailed:
            procs.stop_pid(proc.pid, timeout=5)
            self._pid_file(spec.name).unlink(missing_ok=True)
            raise
        return proc.pid

    def stop(self, spec: ServiceSpec) -> bool:
        pid = self.pid(spec)
        pid_file = self._pid_file(spec.name)
        if pid is None:
            pid_file.unlink(missing_ok=True)
            return False
        procs.stop_pid(pid, timeout=spec.stop_timeout, sig=signal.SIGTERM)
        if procs.pid_alive(pid):
            raise OperationFailed(f"`{spec.name}` (pid {pid}) did not stop; kill it by hand.")
        pid_file.unlink(missing_ok=True)
        return True


def wait_healthy(url: str, timeout: float, what: str, log: Path, pid: int) -> None:
    """Poll ``url`` until it answers 200; fail early if the process exits, naming its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if not procs.pid_alive(pid):
            raise OperationFailed(f"`{what}` exited while starting{_last_line(log)}; see `{log}`.")
        time.sleep(0.1)
    raise OperationFailed(f"`{what}` did not answer 200 on {url} within {timeout:g} s; see `{log}`.")


def _last_line(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f" ({lines[-1][:160]})" if lines else ""
