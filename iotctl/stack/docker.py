"""The Docker Compose stack: render a self-contained stack directory, then drive it with ``docker compose``.

The directory (default ``<state_dir>/docker``) is what a VM deployment ships as well::

    compose.yaml                 rendered from templates/docker/compose.yaml.j2 (no secret in it)
    .env                         0600; ports, the owner's uid/gid and Grafana's two passwords
    secrets/                     0700; one 0600 file per secret, mounted as Compose secrets under /run/secrets
    mosquitto/config/            mosquitto.conf (read-only in the container)
    mosquitto/data/              broker persistence and dynamic-security.json (the broker's accounts, roles, ACLs)
    mosquitto/certs/             server.crt and server.key, only when the TLS listener is on (issued by pki/)
    pki/                         the stack's CA (ca.crt, ca.key 0600), only when the TLS listener is on
    grafana/provisioning/        copied from infra/grafana/provisioning
    grafana/dashboards/          copied from infra/grafana/dashboards
    prometheus/prometheus.yml    rendered from templates/docker/prometheus.yml.j2 (scrapes ingest, config-server)

Rendering is idempotent: secrets already in ``secrets/`` are kept, so re-rendering never locks a running stack
out.  The broker's accounts live in the broker (Mosquitto's dynamic security): the first render seeds
``dynamic-security.json`` with the admin and service clients (or migrates a stack rendered before, keeping every
device's password); afterwards the broker owns that file and iotctl changes it only over the control API.
No password is ever passed on a command line; ``docker compose`` reads them from the files above.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from iotctl.broker import dynsec
from iotctl.errors import InvalidInput, MissingDependency, OperationFailed, Unreachable
from iotctl.secretfiles import read_secret
from iotctl.stack.docker_options import (
    BUILT_IMAGES,
    IMAGES,
    SCRAPE_TARGETS,
    SECRET_FILES,
    SERVICE_SECRETS,
    SERVICES,
    DockerOptions,
    service_environments,
)
from iots6_platform.core import contract

__all__ = [
    "IMAGES",
    "SCRAPE_TARGETS",
    "SECRET_FILES",
    "SERVICES",
    "DockerOptions",
    "DockerStack",
    "service_environments",
]

_NATIVE_HINT = "or run the native stack with `iotctl stack up`"


@dataclass
class DockerStack:
    """A rendered stack directory and the ``docker compose`` calls that run it."""

    directory: Path
    runner: Callable[..., subprocess.CompletedProcess] = subprocess.run
    which: Callable[[str], str | None] = shutil.which

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)

    # -- paths
    @property
    def compose_file(self) -> Path:
        return self.directory / "compose.yaml"

    @property
    def env_file(self) -> Path:
        return self.directory / ".env"

    @property
    def secrets_dir(self) -> Path:
        return self.directory / "secrets"

    def secret_file(self, name: str) -> Path:
        return self.secrets_dir / SECRET_FILES[name]

    @property
    def mosquitto_config_dir(self) -> Path:
        return self.directory / "mosquitto" / "config"

    @property
    def mosquitto_data_dir(self) -> Path:
        return self.directory / "mosquitto" / "data"

    @property
    def broker_state_file(self) -> Path:
        """The broker's dynamic-security state (seeded by the first render, then the broker's own)."""
        return self.mosquitto_data_dir / dynsec.STATE_FILE

    @property
    def ca_file(self) -> Path:
        return self.directory / "pki" / "ca.crt"

    def _topic_base(self) -> str:
        meta = self.meta_file
        if meta.exists():
            return json.loads(meta.read_text()).get("topic_base", contract.DEFAULT_TOPIC_BASE)
        return contract.DEFAULT_TOPIC_BASE

    @property
    def prometheus_config(self) -> Path:
        return self.directory / "prometheus" / "prometheus.yml"

    @property
    def meta_file(self) -> Path:
        return self.directory / "stack-docker.json"

    # -- render
    def render(self, options: DockerOptions | None = None) -> list[Path]:
        """Write (or refresh) every file of the stack directory (``iotctl.stack.docker_render``); returns the files
        written."""
        from iotctl.stack.docker_render import render_stack

        return render_stack(self, options or DockerOptions())

    def admin_endpoint(self, port: int, host: str = "127.0.0.1"):
        """The dynamic-security admin's login on the published plaintext port (the host's loopback)."""
        from iotctl.endpoints import MqttEndpoint

        password = read_secret(self.secret_file("mqtt-admin"), "Docker stack secret `mqtt-admin`")
        return MqttEndpoint(host, port, dynsec.ADMIN_USERNAME, password)

    def ensure_broker_identities(self, port: int, host: str = "127.0.0.1") -> list[str]:
        """After ``up``: the running broker's roles and service clients as this iotctl expects them (over the
        control API; a newer iotctl may have changed a role). Returns what changed."""
        services = {
            role: read_secret(self.secret_file(secret), f"Docker stack secret `{secret}`")
            for role, secret in SERVICE_SECRETS.items()
        }
        return dynsec.reconcile(self.admin_endpoint(port, host), self._topic_base(), services, self.broker_state_file)

    # -- docker compose
    def compose_command(self) -> list[str]:
        """``docker compose`` (or standalone ``docker-compose`` v2), checked to work and reach an engine."""
        docker = self.which("docker")
        base: list[str] | None = None
        if docker and self._ok([docker, "compose", "version"]):
            base = [docker, "compose"]
        elif (standalone := self.which("docker-compose")) and self._ok([standalone, "version"]):
            base = [standalone]
        if base is None:
            if not docker:
                raise MissingDependency(
                    f"`docker` not found on PATH; install Docker Engine with the Compose plugin {_NATIVE_HINT}."
                )
            raise MissingDependency(
                "`docker compose` is not available (the Compose v2 plugin is missing); install "
                f"docker-compose-plugin {_NATIVE_HINT}."
            )
        if docker and not self._ok([docker, "info", "--format", "{{.ServerVersion}}"]):
            raise Unreachable(
                "The Docker engine is not reachable (`docker info` failed); "
                f"start it (systemctl start docker) "
                f"{_NATIVE_HINT}."
            )
        return base + [
            "--project-directory",
            str(self.directory),
            "-f",
            str(self.compose_file),
            "--env-file",
            str(self.env_file),
        ]

    def _ok(self, argv: Sequence[str]) -> bool:
        try:
            return self.runner(list(argv), capture_output=True, text=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _require_rendered(self) -> None:
        if not self.compose_file.exists() or not self.env_file.exists():
            raise OperationFailed(
                f"No Docker stack in `{self.directory}`; render it first (DockerStack.render / the CLI's render step)."
            )

    def _compose(self, *args: str, capture: bool = False, timeout: float | None = None) -> subprocess.CompletedProcess:
        self._require_rendered()
        argv = self.compose_command() + list(args)
        try:
            proc = self.runner(argv, cwd=self.directory, capture_output=capture, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise OperationFailed(
                f"`docker compose {args[0]}` did not finish in {timeout:.0f} s; check "
                "`docker compose ps` in the stack directory."
            ) from None
        if proc.returncode != 0:
            detail = (proc.stderr or "").strip().splitlines()[-1:] if capture else []
            raise OperationFailed(
                f"`docker compose {args[0]}` failed (exit {proc.returncode})"
                f"{': ' + detail[0] if detail else ''}; "
                "see its output and the service logs."
            )
        return proc

    def up(self, build: bool = True, wait: bool = True, timeout: int = 300) -> None:
        """Start the stack; with ``wait``, return once every service is healthy (the migration: finished)."""
        args = ["up", "--detach", "--remove-orphans"]
        if build:
            args.append("--build")
        if wait:
            args += ["--wait", "--wait-timeout", str(timeout)]
        self._compose(*args, timeout=timeout + 600 if build else timeout + 60)

    def require_images(self, version: str) -> None:
        """Without a build context the service images must exist already: MissingDependency naming the first that
        does not (``docker image inspect``), with the command that builds it from a checkout."""
        self.compose_command()  # Compose and the engine are there, or a clear error
        docker = self.which("docker") or "docker"
        for target, image in BUILT_IMAGES.items():
            tag = f"{image}:{version}"
            if not self._ok([docker, "image", "inspect", tag]):
                raise MissingDependency(
                    f"Image `{tag}` is not on this machine and this iotctl (installed from a wheel) has no sources "
                    f"to build it; build it in a checkout (docker build --target {target} -t {tag} -f "
                    f"services/Dockerfile .) {_NATIVE_HINT}."
                )

    def down(self, volumes: bool = False) -> None:
        """Stop and remove the containers (and, with ``volumes``, the database and Grafana volumes)."""
        self._compose("down", "--remove-orphans", *(["--volumes"] if volumes else []), timeout=300)

    def ps(self) -> list[dict]:
        """One dict per container (Service, State, Health, ...) as ``docker compose ps --format json``."""
        out = self._compose("ps", "--all", "--format", "json", capture=True, timeout=60).stdout.strip()
        if not out:
            return []
        if out.startswith("["):  # Compose < 2.21 prints one array
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def logs(self, service: str | None = None, tail: int = 200) -> str:
        if service is not None and service not in SERVICES:
            raise InvalidInput(f"Unknown service `{service}`; use one of {', '.join(SERVICES)}.")
        args = ["logs", "--no-color", "--tail", str(tail)] + ([service] if service else [])
        return self._compose(*args, capture=True, timeout=60).stdout
