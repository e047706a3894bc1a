"""The native local stack: Mosquitto, PostgreSQL, the ingest and the config server as child processes.

No Docker: every process runs under the state directory (paths from ``iotctl.stack.layout.StackLayout``),
bound to 127.0.0.1, with generated credentials kept in 0600 files.  ``up`` is idempotent (it starts only
what is down), ``down`` stops in reverse order and keeps the data unless asked to reset, ``status`` reports
from the live processes (pid files), never from a cached file.

This module orchestrates; the parts are: ``engines`` (which broker and PostgreSQL, ``system`` or ``embedded``),
``native_broker`` (the broker and its service accounts), ``services`` (the Python services and their env),
``state`` (directories, secrets, ``stack.json``, the wipe).  It implements ``iotctl.stack.base.Stack``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from iotctl.broker.accounts import service_username
from iotctl.errors import InvalidInput
from iotctl.settings import Settings
from iotctl.stack import engines, state
from iotctl.stack.base import (
    ABSENT,
    RUNNING,
    STOPPED,
    Component,
    Progress,
    StackReport,
    check_report,
    confirm_needed,
    quiet,
)
from iotctl.stack.engines import BIND, EMBEDDED_DETAIL, ENGINES, MOSQUITTO, POSTGRES, embedded_missing
from iotctl.stack.layout import DB_NAME, DB_OWNER, StackLayout
from iotctl.stack.native_broker import ensure_broker, port_free
from iotctl.stack.services import CONFIG_SERVER, INGEST, NativeServices, ServiceSpec, service_available
from iotctl.stack.state import SECRET_NAMES, SERVICE_SECRETS

__all__ = [
    "ABSENT",
    "CONFIG_SERVER",
    "INGEST",
    "MOSQUITTO",
    "POSTGRES",
    "RUNNING",
    "SECRET_NAMES",
    "STOPPED",
    "NativeStack",
    "ServiceSpec",
    "confirm_needed",
    "embedded_missing",
    "service_available",
]


class NativeStack:
    """The stack of one state directory, configured by ``settings`` (ports, topic base, engine)."""

    kind = "native"

    def __init__(self, settings: Settings, progress: Progress | None = None):
        self.settings = settings
        self.layout = StackLayout(Path(settings.state_dir))
        self.progress = progress or quiet
        self.runner = NativeServices(settings, self.layout, self._engine)

    # -- names and places
    @property
    def location(self) -> Path:
        return self.layout.state_dir

    @property
    def reset_question(self) -> str:
        return f"Delete all stack data in {self.layout.state_dir}?"

    @property
    def db_url(self) -> str:
        return f"postgresql://{DB_OWNER}@{BIND}:{self.settings.pg_port}/{DB_NAME}"

    def secret_file(self, name: str) -> Path:
        return self.layout.secret(name)

    def recorded(self) -> dict[str, Any]:
        """The last ``stack.json`` (empty when the stack never came up or the file is unreadable)."""
        return state.recorded(self.layout)

    # -- engines
    def resolve_engine(self) -> str:
        """The engine to start with (``iotctl.stack.engines``); raises before anything is created."""
        recorded = self.recorded().get("engine")
        initialised = recorded in ENGINES and self._postgres(recorded).initialised
        return engines.resolve_engine(self.settings.engine, recorded, initialised, self.layout.state_dir)

    def _engine(self) -> str:
        """The engine of the stack as recorded (``system`` when it never came up)."""
        recorded = self.recorded().get("engine")
        return recorded if recorded in ENGINES else "system"

    def _broker(self, engine: str | None = None):
        return engines.broker(self.layout, self.settings, engine or self._engine())

    def _postgres(self, engine: str | None = None):
        return engines.postgres(self.layout, self.settings, engine or self._engine())

    def services(self, engine: str | None = None) -> list[ServiceSpec]:
        return self.runner.services(engine)

    def ensure_broker(self, engine: str | None = None, secrets: dict[str, str] | None = None) -> list[str]:
        """The broker alone, as `up` brings it: running, with the service accounts of the secret files (and, for
        Mosquitto, migrated into dynamic security).  Returns ``["mosquitto"]`` if it was started."""
        engine = engine or self.resolve_engine()
        if secrets is None:
            state.make_dirs(self.layout)
            secrets = state.ensure_secrets(self.layout, self.progress)
        return ensure_broker(self.layout, self.settings, engine, secrets, self.progress)

    def _migrate(self, db_password: str) -> list[str]:
        from iotctl.db.connect import connect
        from iotctl.endpoints import DbEndpoint
        from iots6_platform.core.db import migrate

        with connect(DbEndpoint(self.db_url, db_password)) as conn:
            _, applied = migrate.migrate(conn)
        return [f"{m.version:04d}_{m.name}" for m in applied]

    # -- verbs
    def up(self) -> StackReport:
        engine = self.resolve_engine()
        started: list[str] = []
        state.make_dirs(self.layout)
        secrets = state.ensure_secrets(self.layout, self.progress)

        started += self.ensure_broker(engine, secrets)

        pg = self._postgres(engine)
        if not pg.pid():
            port_free(self.settings.pg_port, POSTGRES, "IOTCTL_PG_PORT")
            self.progress(f"starting {POSTGRES} ({engine}) on {BIND}:{self.settings.pg_port}")
            pg.start()
            started.append(POSTGRES)
        pg.ensure_database(DB_NAME, DB_OWNER, secrets["db"])
        for name in self._migrate(secrets["db"]):
            self.progress(f"applied migration {name}")

        # Recorded before the services start: `down` knows the stack even if a service fails to come up.
        self._write_stack_file(engine)
        for spec in self.services(engine):
            if not service_available(spec.module):
                self.progress(f"skipping {spec.name}: package `{spec.module}` is not installed")
                continue
            if self.runner.pid(spec):
                continue
            self.progress(f"starting {spec.name} on {BIND}:{spec.port}")
            self.runner.start(spec)
            started.append(spec.name)

        report = self.status(engine)
        report.started = started
        self._write_stack_file(engine, report)
        return report

    def down(self, reset: bool = False) -> StackReport:
        engine = self._engine()
        stopped: list[str] = []
        for spec in reversed(self.services(engine)):
            if self.runner.pid(spec):
                self.progress(f"stopping {spec.name}")
            if self.runner.stop(spec):
                stopped.append(spec.name)
        pg = self._postgres(engine)
        if pg.pid():
            self.progress(f"stopping {POSTGRES}")
            pg.stop(mode="fast")
            stopped.append(POSTGRES)
        broker = self._broker(engine)
        if broker.pid():
            self.progress(f"stopping {MOSQUITTO}")
            broker.stop()
            stopped.append(MOSQUITTO)
        wiped = state.wipe(self.layout, self.progress) if reset else []
        report = self.status(engine)
        report.stopped = stopped
        report.wiped = wiped
        if not reset and self.layout.stack_file.exists():
            self._write_stack_file(engine, report)
        return report

    def status(self, engine: str | None = None) -> StackReport:
        """Live state; ``engine`` (default: the recorded one) says which broker and PostgreSQL to look for."""
        engine = engine or self.recorded().get("engine")
        embedded = engine == "embedded"
        broker_pid, pg_pid = self._broker(engine).pid(), self._postgres(engine).pid()
        components = [
            Component(
                MOSQUITTO,
                RUNNING if broker_pid else STOPPED,
                broker_pid,
                f"mqtt://{BIND}:{self.settings.mqtt_port}",
                EMBEDDED_DETAIL[MOSQUITTO] if embedded else "",
            ),
            Component(
                POSTGRES,
                RUNNING if pg_pid else STOPPED,
                pg_pid,
                self.db_url,
                EMBEDDED_DETAIL[POSTGRES] if embedded else "",
            ),
        ]
        for spec in self.services():
            pid = self.runner.pid(spec)
            endpoint = f"http://{BIND}:{spec.port}"
            if pid:
                components.append(Component(spec.name, RUNNING, pid, endpoint))
            elif service_available(spec.module):
                log = self.runner.log_file(spec.name)
                components.append(Component(spec.name, STOPPED, None, endpoint, f"log: {log}"))
            else:
                components.append(Component(spec.name, ABSENT, None, None, f"package `{spec.module}` is not installed"))
        return StackReport(self.layout.state_dir, engine, components, self.endpoints(), self.credentials())

    def log_files(self) -> dict[str, Path]:
        """Where each component logs (the embedded broker logs under the `mosquitto` name too)."""
        return {
            MOSQUITTO: self._broker().log_file,
            POSTGRES: self._postgres().log_file,
            INGEST: self.runner.log_file(INGEST),
            CONFIG_SERVER: self.runner.log_file(CONFIG_SERVER),
        }

    def logs(self, component: str | None = None, lines: int = 200) -> str:
        """The last ``lines`` lines of one component's log, or of each."""
        files = self.log_files()
        if component is not None and component not in files:
            raise InvalidInput(f"Unknown component `{component}`; use one of {', '.join(files)}.")
        chunks = []
        for name, path in files.items():
            if component not in (None, name):
                continue
            text = path.read_text(errors="replace") if path.exists() else ""
            tail = "\n".join(text.splitlines()[-lines:])
            chunks.append(f"==> {name} ({path}) <==\n{tail}" if component is None else tail)
        return "\n".join(chunks) + "\n"

    def check(self, report: StackReport | None = None) -> StackReport:
        """``status`` that raises Unreachable when a component that should run is stopped."""
        return check_report(report or self.status())

    # -- descriptions
    def endpoints(self) -> dict[str, Any]:
        s = self.settings
        available = {spec.name: service_available(spec.module) for spec in self.services()}
        return {
            "mqtt": {"host": BIND, "port": s.mqtt_port, "topic_base": s.topic_base},
            "mqtt_tls": (
                {"host": BIND, "port": s.mqtt_tls_port, "ca_file": str(self.layout.ca_file)}
                if s.mqtt_tls_port
                else None
            ),
            "postgres": self.db_url,
            "ingest_health": f"http://{BIND}:{s.ingest_health_port}/healthz" if available[INGEST] else None,
            "ingest_metrics": f"http://{BIND}:{s.ingest_health_port}/metrics" if available[INGEST] else None,
            "config_server": f"http://{BIND}:{s.config_port}" if available[CONFIG_SERVER] else None,
            "grafana": grafana_hint(),
        }

    def credentials(self) -> dict[str, Any]:
        return {
            "dir": str(self.layout.secrets_dir),
            "files": {name: str(self.layout.secret(name)) for name in SECRET_NAMES},
            "mqtt_usernames": {role: service_username(role) for role in SERVICE_SECRETS},
            "db_user": DB_OWNER,
        }

    def _write_stack_file(self, engine: str, report: StackReport | None = None) -> None:
        state.write_stack_file(self.layout, engine, (report or self.status(engine)).to_dict())


def grafana_hint() -> dict[str, str | None]:
    """The native stack does not run Grafana: say where its provisioning and dashboards are, and how to get one."""
    from iotctl.packaged import grafana_dir

    binary = shutil.which("grafana-server") or shutil.which("grafana")
    grafana = grafana_dir()
    return {
        "binary": binary,
        "provisioning": str(grafana / "provisioning"),
        "dashboards": str(grafana / "dashboards"),
        "note": (
            "not started by the native stack; point its provisioning at the directory above"
            if binary
            else "not installed; `iotctl stack up --docker` runs Grafana with these dashboards provisioned"
        ),
    }
