"""The Docker Compose stack behind the ``Stack`` interface (``iotctl.stack.base``), configured by the settings.

``iotctl.stack.docker.DockerStack`` renders the directory and drives ``docker compose``; this adapter turns the
settings into ``DockerOptions``, reconciles the broker's accounts after ``up`` and reports the containers as
components, so ``iotctl stack up|down|status|logs --docker`` behave as they do on the native stack.

From a source checkout the service images are built (``docker compose up --build``); from an installed wheel
there is nothing to build from, so the prebuilt ``iots6/<service>:<version>`` images must be on the machine (a
missing one is a one-sentence error naming the ``docker build`` that makes it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iotctl import __version__
from iotctl.broker.accounts import SERVICE_ROLES, service_username
from iotctl.settings import Settings
from iotctl.stack.base import DONE, RUNNING, STOPPED, Component, Progress, StackReport, check_report, quiet
from iotctl.stack.docker import DockerStack
from iotctl.stack.docker_options import SECRET_FILES, SERVICES, VOLUMES, DockerOptions
from iotctl.stack.layout import DB_NAME, DB_OWNER

BIND = "127.0.0.1"
#: The native stack's secret names -> the Docker stack's (``SECRET_FILES``).
NATIVE_SECRETS = {
    "operator": "mqtt-operator",
    "db": "db",
    "admin-token": "config-admin-token",
    "mqtt-admin": "mqtt-admin",
}
#: One-shot jobs: exited with 0 is their success, not a stopped service.
JOBS = ("migrate",)


class ComposeStack:
    """The Docker stack in ``<state_dir>/docker``."""

    kind = "docker"

    def __init__(self, settings: Settings, progress: Progress | None = None, compose: DockerStack | None = None):
        self.settings = settings
        self.progress = progress or quiet
        self.compose = compose or DockerStack(Path(settings.state_dir) / "docker")

    @property
    def location(self) -> Path:
        return self.compose.directory

    @property
    def reset_question(self) -> str:
        return "Delete the Docker stack's database and Grafana volumes?"

    def options(self) -> DockerOptions:
        s = self.settings
        return DockerOptions(
            topic_base=s.topic_base,
            mqtt_port=s.mqtt_port,
            pg_port=s.pg_port,
            config_port=s.config_port,
            ingest_port=s.ingest_health_port,
            mqtt_tls=bool(s.mqtt_tls_port),
            mqtt_tls_port=s.mqtt_tls_port or 8883,
        )

    def secret_file(self, name: str) -> Path:
        return self.compose.secret_file(NATIVE_SECRETS[name])

    # -- verbs
    def up(self) -> StackReport:
        options = self.options()
        rendered = self.compose.render(options)
        self.progress(f"rendered {len(rendered)} files into {self.compose.directory}")
        build = options.build_context is not None
        if not build:
            self.compose.require_images(__version__)
        running = self._running()
        self.compose.up(build=build)
        for change in self.compose.ensure_broker_identities(options.mqtt_port):
            self.progress(f"broker: updated {change}")
        report = self.status()
        report.started = [c.name for c in report.components if c.state == RUNNING and c.name not in running]
        return report

    def down(self, reset: bool = False) -> StackReport:
        running = self._running()
        self.compose.down(volumes=reset)
        report = self.status()
        report.stopped = [name for name in reversed(SERVICES) if name in running]
        if reset:
            report.wiped = [f"{self.options().project}_{volume}" for volume in VOLUMES]
        return report

    def _running(self) -> set[str]:
        return {row.get("Service") for row in self.compose.ps() if row.get("State") == "running"}

    def status(self) -> StackReport:
        rows = {row.get("Service"): row for row in self.compose.ps()}
        endpoints = self._component_endpoints()
        components = []
        for name in SERVICES:
            row = rows.get(name)
            if row is None:
                components.append(Component(name, STOPPED, None, endpoints.get(name), "no container"))
                continue
            state = row.get("State") or ""
            if state == "running":
                value = RUNNING
            elif name in JOBS and state == "exited" and row.get("ExitCode") == 0:
                value = DONE
            else:
                value = STOPPED
            detail = " ".join(str(part) for part in (state, row.get("Health")) if part)
            components.append(Component(name, value, None, endpoints.get(name), detail))
        return StackReport(
            self.compose.directory, "docker", components, self.endpoints(), self.credentials(), kind=self.kind
        )

    def check(self, report: StackReport | None = None) -> StackReport:
        return check_report(report or self.status())

    def logs(self, component: str | None = None, lines: int = 200) -> str:
        return self.compose.logs(component, tail=lines)

    # -- descriptions
    def _db_url(self, options: DockerOptions) -> str:
        return f"postgresql://{DB_OWNER}@{BIND}:{options.pg_port}/{DB_NAME}"

    def _component_endpoints(self) -> dict[str, str]:
        o = self.options()
        return {
            "mosquitto": f"mqtt://{BIND}:{o.mqtt_port}",
            "timescaledb": self._db_url(o),
            "ingest": f"http://{BIND}:{o.ingest_port}",
            "config-server": f"http://{BIND}:{o.config_port}",
            "prometheus": f"http://{BIND}:{o.prometheus_port}",
            "grafana": f"http://{BIND}:{o.grafana_port}",
        }

    def endpoints(self) -> dict[str, Any]:
        o = self.options()
        return {
            "mqtt": {"host": BIND, "port": o.mqtt_port, "topic_base": o.topic_base},
            "mqtt_tls": (
                {"host": BIND, "port": o.mqtt_tls_port, "ca_file": str(self.compose.ca_file)} if o.mqtt_tls else None
            ),
            "postgres": self._db_url(o),
            "ingest_health": f"http://{BIND}:{o.ingest_port}/healthz",
            "ingest_metrics": f"http://{BIND}:{o.ingest_port}/metrics",
            "config_server": f"http://{BIND}:{o.config_port}",
            "prometheus": f"http://{BIND}:{o.prometheus_port}",
            "grafana": {
                "url": f"http://{BIND}:{o.grafana_port}",
                "dashboards": str(self.compose.directory / "grafana" / "dashboards"),
                "note": f"runs in the Docker stack on http://{BIND}:{o.grafana_port} (user `admin`)",
            },
        }

    def credentials(self) -> dict[str, Any]:
        return {
            "dir": str(self.compose.secrets_dir),
            "files": {name: str(self.compose.secret_file(name)) for name in SECRET_FILES},
            "mqtt_usernames": {role: service_username(role) for role in SERVICE_ROLES},
            "db_user": DB_OWNER,
        }
