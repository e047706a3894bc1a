"""The native local stack: Mosquitto, PostgreSQL, the ingest and the config server as child processes.

No Docker: every process runs under the state directory (paths from ``iotctl.stack.layout.StackLayout``),
bound to 127.0.0.1, with generated credentials kept in 0600 files.  ``up`` is idempotent (it starts only
what is down), ``down`` stops in reverse order and keeps the data unless asked to reset, ``status`` reports
from the live processes (pid files), never from a cached file.

Engines: ``system`` runs the Debian ``mosquitto`` and PostgreSQL binaries; ``embedded`` runs pip-installed
ones (the ``embedded`` extra): the amqtt MQTT 3.1.1 broker (``iotctl.stack.embedded_broker``) and the
PostgreSQL 16 binaries inside ``pgserver``, with the same accounts, ACL, private socket and SCRAM passwords.
``auto`` picks ``system`` when both binaries are installed, else ``embedded`` when the extra is, else fails
with one line naming both fixes.  The engine a stack was started with is recorded in ``stack.json``; ``auto``
keeps it (a cluster made by one PostgreSQL major version cannot be opened by another), an explicit different
engine is refused.

The Python services are packages of this repository: ``iots6_platform.ingest`` and ``iots6_platform.config_server``.
When a package is not installed its component is reported as ``absent`` (never as running) and not started.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import stat
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iotctl.broker.accounts import (
    ROLE_CONFIG,
    ROLE_INGEST,
    ROLE_OPERATOR,
    AccountStore,
    service_username,
)
from iotctl.broker.pwhash import verify_password
from iotctl.errors import InvalidInput, MissingDependency, OperationFailed, Unreachable
from iotctl.secretfiles import generate_password, read_secret, write_secret
from iotctl.settings import Settings
from iotctl.stack import procs
from iotctl.stack.layout import DB_NAME, DB_OWNER, StackLayout

BIND = "127.0.0.1"
MOSQUITTO, POSTGRES, INGEST, CONFIG_SERVER = "mosquitto", "postgres", "ingest", "config-server"
COMPONENTS = (MOSQUITTO, POSTGRES, INGEST, CONFIG_SERVER)
RUNNING, STOPPED, ABSENT = "running", "stopped", "absent"
ENGINES = ("system", "embedded")
EMBEDDED_DETAIL = {
    MOSQUITTO: "embedded amqtt broker (MQTT 3.1.1 only; sessions are lost when it restarts)",
    POSTGRES: "embedded PostgreSQL 16 from pgserver",
}

#: Secret files generated once per state dir (``layout.secret(name)``); ``mqtt-admin`` is the broker's
#: dynamic-security admin (provisioning), used by the system engine only.
SECRET_NAMES = (ROLE_OPERATOR, ROLE_INGEST, ROLE_CONFIG, "mqtt-admin", "db", "admin-token")
#: Broker service accounts: (role, secret file name).
SERVICE_ACCOUNTS = ((ROLE_OPERATOR, ROLE_OPERATOR), (ROLE_INGEST, ROLE_INGEST), (ROLE_CONFIG, ROLE_CONFIG))
INGEST_CLIENT_ID = "iots6-ingest-1"
#: The ingest flushes its buffer to the database on SIGTERM; give it this long before SIGKILL.
INGEST_STOP_TIMEOUT = 30.0
HEALTH_TIMEOUT = 30.0
_PORT_ENV = {"ingest": "IOTCTL_INGEST_HEALTH_PORT", "config-server": "IOTCTL_CONFIG_PORT"}

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


# --------------------------------------------------------------------------------------------------- reports


@dataclass
class Component:
    name: str
    state: str  # RUNNING | STOPPED | ABSENT
    pid: int | None = None
    endpoint: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "pid": self.pid, "endpoint": self.endpoint, "detail": self.detail}


@dataclass
class StackReport:
    """What the stack looks like now, plus what this call changed."""

    state_dir: Path
    engine: str | None
    components: list[Component]
    endpoints: dict[str, Any]
    credentials: dict[str, Any]
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    wiped: list[str] = field(default_factory=list)

    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    @property
    def down(self) -> list[str]:
        """Components that should run but do not (absent optional services are not down)."""
        return [c.name for c in self.components if c.state == STOPPED]

    def to_dict(self) -> dict[str, Any]:
        return {
            "state_dir": str(self.state_dir),
            "engine": self.engine,
            "components": {c.name: c.to_dict() for c in self.components},
            "endpoints": self.endpoints,
            "credentials": self.credentials,
            "started": self.started,
            "stopped": self.stopped,
            "wiped": self.wiped,
        }


# --------------------------------------------------------------------------------------------------- services


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


# ----------------------------------------------------------------------------------------------- the stack


class NativeStack:
    """The stack of one state directory, configured by ``settings`` (ports, topic base, engine)."""

    def __init__(self, settings: Settings, progress: Progress | None = None):
        self.settings = settings
        self.layout = StackLayout(Path(settings.state_dir))
        self.progress = progress or _quiet

    # -- names and places
    @property
    def db_url(self) -> str:
        return f"postgresql://{DB_OWNER}@{BIND}:{self.settings.pg_port}/{DB_NAME}"

    def _pid_file(self, name: str) -> Path:
        return self.layout.run_dir / f"{name}.pid"

    def _log_file(self, name: str) -> Path:
        return self.layout.logs_dir / f"{name}.log"

    def recorded(self) -> dict[str, Any]:
        """The last ``stack.json`` (empty when the stack never came up or the file is unreadable)."""
        try:
            return json.loads(self.layout.stack_file.read_text())
        except (OSError, ValueError):
            return {}

    # -- engines
    def resolve_engine(self) -> str:
        """The engine to start with (see the module docstring); raises before anything is created."""
        wanted = self.settings.engine
        recorded = self.recorded().get("engine")
        if recorded in ENGINES and self._postgres(recorded).initialised:
            if wanted in ("auto", recorded):
                return recorded
            raise InvalidInput(
                f"The stack in `{self.layout.state_dir}` was created with the `{recorded}` engine; use "
                f"--engine {recorded} (IOTCTL_ENGINE={recorded}) or delete it with "
                "`iotctl stack down --reset`."
            )
        if wanted == "system":
            return "system"
        missing = embedded_missing()
        if wanted == "embedded":
            if missing:
                raise MissingDependency(
                    f"The `embedded` engine needs {' and '.join(f'`{m}`' for m in missing)}; install them "
                    "(pip install 'iotctl[embedded]') or use IOTCTL_ENGINE=system with Mosquitto and "
                    "PostgreSQL installed."
                )
            return "embedded"
        if system_available():
            return "system"
        if not missing:
            return "embedded"
        raise MissingDependency(
            "Neither `mosquitto` and PostgreSQL nor the embedded engines are installed; install them "
            "(`make install-system`, as root) or install the embedded extra (pip install 'iotctl[embedded]')."
        )

    def _engine(self) -> str:
        """The engine of the stack as recorded (``system`` when it never came up)."""
        recorded = self.recorded().get("engine")
        return recorded if recorded in ENGINES else "system"

    def _broker(self, engine: str | None = None):
        engine = engine or self._engine()
        if engine == "embedded":
            from iotctl.stack.embedded_broker import EmbeddedBroker as Broker
        else:
            from iotctl.stack.mosquitto import MosquittoServer as Broker

        if engine == "embedded":
            return Broker(self.layout.mosquitto_dir, self.settings.mqtt_port, topic_base=self.settings.topic_base)
        return Broker(
            self.layout.mosquitto_dir, self.settings.mqtt_port, topic_base=self.settings.topic_base, tls=self._tls()
        )

    def _tls(self):
        """The broker's TLS listener (``mqtt_tls_port``), its certificate issued by the stack's CA in ``pki/``."""
        from iotctl.stack.mosquitto import TlsListener

        if not self.settings.mqtt_tls_port:
            return None
        pki_dir = self.layout.pki_dir
        return TlsListener(self.settings.mqtt_tls_port, pki_dir / "broker.crt", pki_dir / "broker.key", BIND)

    def _ensure_certificates(self) -> None:
        """The stack's CA and the broker's server certificate (for 127.0.0.1 and localhost), made or renewed."""
        from iotctl import pki

        ca = pki.ensure_ca(self.layout.pki_dir, common_name=f"iotctl local stack CA ({self.layout.state_dir.name})")
        pki.issue_server_cert(ca, self.layout.pki_dir, "broker", dns_names=["localhost"], ip_addresses=[BIND])

    def _postgres(self, engine: str | None = None):
        from iotctl.stack.postgres import PostgresServer

        return PostgresServer(
            self.layout.postgres_dir, self.settings.pg_port, fsync=True, engine=engine or self._engine()
        )

    def _engine_pids(self, engine: str | None = None) -> dict[str, int | None]:
        return {MOSQUITTO: self._broker(engine).pid(), POSTGRES: self._postgres(engine).pid()}

    # -- services
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

    def _service_pid(self, spec: ServiceSpec) -> int | None:
        """The live pid of ``spec``; a pid file naming some other process (pid reuse) counts as stopped."""
        return procs.read_pid_of(self._pid_file(spec.name), spec.module)

    def _start_service(self, spec: ServiceSpec) -> int:
        log = self._log_file(spec.name)
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

    def _stop_service(self, spec: ServiceSpec) -> bool:
        pid = self._service_pid(spec)
        self_pid_file = self._pid_file(spec.name)
        if pid is None:
            self_pid_file.unlink(missing_ok=True)
            return False
        procs.stop_pid(pid, timeout=spec.stop_timeout, sig=signal.SIGTERM)
        if procs.pid_alive(pid):
            raise OperationFailed(f"`{spec.name}` (pid {pid}) did not stop; kill it by hand.")
        self_pid_file.unlink(missing_ok=True)
        return True

    # -- setup steps
    def _make_dirs(self) -> None:
        layout = self.layout
        layout.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.geteuid() == 0 and layout.postgres_dir.parent == layout.state_dir:
            # As root PostgreSQL runs as `postgres`, who must traverse (not list) the state dir to reach its
            # cluster: 0700 becomes 0711. Every directory below that holds anything private stays 0700.
            mode = stat.S_IMODE(layout.state_dir.stat().st_mode)
            os.chmod(layout.state_dir, mode | 0o011)
        for directory in (layout.secrets_dir, layout.devices_dir, layout.logs_dir, layout.run_dir):
            directory.mkdir(exist_ok=True, mode=0o700)
            os.chmod(directory, 0o700)

    def _ensure_secrets(self) -> dict[str, str]:
        values = {}
        for name in SECRET_NAMES:
            path = self.layout.secret(name)
            if not path.exists():
                write_secret(path, generate_password() + "\n")
                self.progress(f"generated credentials `{path}`")
            values[name] = read_secret(path, f"`{name}` secret")
        return values

    def _service_passwords(self, secrets: dict[str, str]) -> dict[str, str]:
        return {role: secrets[name] for role, name in SERVICE_ACCOUNTS}

    def ensure_broker(self, engine: str | None = None, secrets: dict[str, str] | None = None) -> list[str]:
        """The broker alone, as `up` brings it: running, with the service accounts of the secret files (and, for
        Mosquitto, migrated into dynamic security).  Returns ``["mosquitto"]`` if it was started."""
        engine = engine or self.resolve_engine()
        if secrets is None:
            self._make_dirs()
            secrets = self._ensure_secrets()
        broker = self._broker(engine)
        started: list[str] = []
        if engine != "embedded":
            self._start_mosquitto(broker, secrets, started)
            return started
        accounts_changed = self._ensure_accounts(broker, secrets)
        if broker.pid():
            if accounts_changed:
                broker.reload()
        else:
            _port_free(self.settings.mqtt_port, MOSQUITTO, "IOTCTL_MQTT_PORT")
            self.progress(f"starting {MOSQUITTO} ({engine}) on {BIND}:{self.settings.mqtt_port}")
            broker.start()
            started.append(MOSQUITTO)
        return started

    def _start_mosquitto(self, broker, secrets: dict[str, str], started: list[str]) -> None:
        """Mosquitto with dynamic security: seeded (or migrated from the old password file) before its first
        start, then its roles and service clients brought up to date over the control API."""
        from iotctl.broker import dynsec

        if broker.tls:
            self._ensure_certificates()
        if broker.pid() and (not broker.state_file.exists() or broker.config_changed()):
            # Started by an iotctl from before dynamic security, or with another listener set: a clean restart
            # keeps persistent sessions and queued messages (Mosquitto saves them on SIGTERM).
            why = (
                "to move its accounts into dynamic security"
                if not broker.state_file.exists()
                else "to apply its new configuration"
            )
            self.progress(f"restarting {MOSQUITTO} {why}")
            broker.stop()
        if not broker.pid():
            done = broker.prepare_state(secrets["mqtt-admin"], self._service_passwords(secrets))
            if done == "migrated":
                self.progress(f"migrated the broker accounts into dynamic security (`{broker.state_file}`)")
            _port_free(self.settings.mqtt_port, MOSQUITTO, "IOTCTL_MQTT_PORT")
            if broker.tls:
                _port_free(broker.tls.port, f"{MOSQUITTO} (TLS)", "IOTCTL_MQTT_TLS_PORT")
            self.progress(
                f"starting {MOSQUITTO} (system) on {BIND}:{self.settings.mqtt_port}"
                + (f", TLS on {BIND}:{broker.tls.port}" if broker.tls else "")
            )
            broker.start()
            started.append(MOSQUITTO)
        with dynsec.DynsecAdmin(broker.admin_endpoint(secrets["mqtt-admin"])) as admin:
            for change in dynsec.ensure_platform(
                admin, self.settings.topic_base, self._service_passwords(secrets), dynsec.load_state(broker.state_file)
            ):
                self.progress(f"broker: updated {change}")

    def _ensure_accounts(self, broker, secrets: dict[str, str]) -> bool:
        """Embedded broker: service accounts exist with the passwords of the secret files; True if changed."""
        store: AccountStore = broker.accounts
        accounts = store.load()
        changed = False
        for role, secret_name in SERVICE_ACCOUNTS:
            username = service_username(role)
            current = accounts.get(username)
            if current and current["role"] == role and verify_password(secrets[secret_name], current["hash"]):
                continue
            store.add(username, role, rotate=current is not None, password=secrets[secret_name])
            changed = True
        return changed

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
        self._make_dirs()
        secrets = self._ensure_secrets()

        started += self.ensure_broker(engine, secrets)

        pg = self._postgres(engine)
        if not pg.pid():
            _port_free(self.settings.pg_port, POSTGRES, "IOTCTL_PG_PORT")
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
            if self._service_pid(spec):
                continue
            self.progress(f"starting {spec.name} on {BIND}:{spec.port}")
            self._start_service(spec)
            started.append(spec.name)

        report = self.status(engine)
        report.started = started
        self._write_stack_file(engine, report)
        return report

    def down(self, reset: bool = False) -> StackReport:
        engine = self._engine()
        stopped: list[str] = []
        for spec in reversed(self.services(engine)):
            if self._service_pid(spec):
                self.progress(f"stopping {spec.name}")
            if self._stop_service(spec):
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
        wiped = self._wipe() if reset else []
        report = self.status(engine)
        report.stopped = stopped
        report.wiped = wiped
        if not reset and self.layout.stack_file.exists():
            self._write_stack_file(engine, report)
        return report

    def status(self, engine: str | None = None) -> StackReport:
        """Live state; ``engine`` (default: the recorded one) says which broker and PostgreSQL to look for."""
        engine = engine or self.recorded().get("engine")
        components = []
        pids = self._engine_pids(engine)
        components.append(
            Component(
                MOSQUITTO,
                RUNNING if pids[MOSQUITTO] else STOPPED,
                pids[MOSQUITTO],
                f"mqtt://{BIND}:{self.settings.mqtt_port}",
                EMBEDDED_DETAIL[MOSQUITTO] if engine == "embedded" else "",
            )
        )
        components.append(
            Component(
                POSTGRES,
                RUNNING if pids[POSTGRES] else STOPPED,
                pids[POSTGRES],
                self.db_url,
                EMBEDDED_DETAIL[POSTGRES] if engine == "embedded" else "",
            )
        )
        for spec in self.services():
            pid = self._service_pid(spec)
            endpoint = f"http://{BIND}:{spec.port}"
            if pid:
                components.append(Component(spec.name, RUNNING, pid, endpoint))
            elif service_available(spec.module):
                components.append(Component(spec.name, STOPPED, None, endpoint, f"log: {self._log_file(spec.name)}"))
            else:
                components.append(Component(spec.name, ABSENT, None, None, f"package `{spec.module}` is not installed"))
        return StackReport(self.layout.state_dir, engine, components, self.endpoints(), self.credentials())

    def log_files(self) -> dict[str, Path]:
        """Where each component logs (the embedded broker logs under the `mosquitto` name too)."""
        return {
            "mosquitto": self._broker().log_file,
            "postgres": self._postgres().log_file,
            "ingest": self._log_file("ingest"),
            "config-server": self._log_file("config-server"),
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
        report = report or self.status()
        if report.down:
            raise Unreachable(
                f"Stack component(s) `{'`, `'.join(report.down)}` not running in `{self.layout.state_dir}`; "
                "start them with `iotctl stack up`."
            )
        return report

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
            "mqtt_usernames": {role: service_username(role) for role, _ in SERVICE_ACCOUNTS},
            "db_user": DB_OWNER,
        }

    def _write_stack_file(self, engine: str, report: StackReport | None = None) -> None:
        report = report or self.status(engine)
        data = report.to_dict()
        data["engine"] = engine
        for key in ("started", "stopped", "wiped"):
            data.pop(key)
        data["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
        write_secret(self.layout.stack_file, json.dumps(data, indent=2, sort_keys=True) + "\n")

    # -- reset
    def _wipe(self) -> list[str]:
        """Remove what the stack created (not the state dir's unrelated files); the cluster too if outside."""
        layout = self.layout
        wiped = []
        postgres_dir = layout.postgres_dir
        outside = postgres_dir.parent != layout.state_dir
        if outside and postgres_dir.exists():
            # /var/lib/iotctl/<hash>/postgres: the <hash> directory is ours alone.
            target = postgres_dir.parent if postgres_dir.parent.parent == Path("/var/lib/iotctl") else postgres_dir
            shutil.rmtree(target)
            wiped.append(str(target))
        for path in (
            layout.stack_file,
            layout.secrets_dir,
            layout.devices_dir,
            layout.mosquitto_dir,
            layout.state_dir / "postgres",
            layout.logs_dir,
            layout.run_dir,
        ):
            if path.is_dir():
                shutil.rmtree(path)
                wiped.append(str(path))
            elif path.exists():
                path.unlink()
                wiped.append(str(path))
        try:
            layout.state_dir.rmdir()  # only when empty: a state dir that also holds other files keeps them
            wiped.append(str(layout.state_dir))
        except OSError:
            pass
        for path in wiped:
            self.progress(f"removed `{path}`")
        return wiped


# --------------------------------------------------------------------------------------------------- helpers


def system_available() -> bool:
    """Whether the ``system`` engine's binaries (mosquitto and a PostgreSQL server) are installed."""
    from iotctl.stack.mosquitto import find_mosquitto
    from iotctl.stack.postgres import find_pg_bindir

    return find_mosquitto() is not None and find_pg_bindir() is not None


def embedded_missing() -> list[str]:
    """The packages of the ``embedded`` extra that are not installed (empty when the engine can run)."""
    from iotctl.stack.embedded_broker import amqtt_available
    from iotctl.stack.postgres import pgserver_bindir

    return [name for name, ok in (("amqtt", amqtt_available()), ("pgserver", pgserver_bindir())) if not ok]


def _port_free(port: int, what: str, env_name: str) -> None:
    if procs.port_open(BIND, port):
        raise OperationFailed(
            f"Port {port} for `{what}` is already in use by another program; stop it or set {env_name}."
        )


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


def grafana_hint() -> dict[str, str | None]:
    """The native stack does not run Grafana: say where its provisioning and dashboards are, and how to get one."""
    binary = shutil.which("grafana-server") or shutil.which("grafana")
    repo = Path(__file__).resolve().parents[2]
    return {
        "binary": binary,
        "provisioning": str(repo / "infra" / "grafana" / "provisioning"),
        "dashboards": str(repo / "infra" / "grafana" / "dashboards"),
        "note": (
            "not started by the native stack; point its provisioning at the directory above"
            if binary
            else "not installed; `iotctl stack up --docker` runs Grafana with these dashboards provisioned"
        ),
    }


def confirm_needed(reset: bool, yes: bool, interactive: bool) -> bool:
    """Whether ``down --reset`` must ask first. Non-interactive callers must pass --yes."""
    if not reset or yes:
        return False
    if not interactive:
        raise InvalidInput("`stack down --reset` deletes all stack data; pass --yes to confirm when not on a TTY.")
    return True
