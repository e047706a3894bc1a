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
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from iotctl import __version__
from iotctl.broker import dynsec
from iotctl.broker.accounts import ROLE_CONFIG, ROLE_INGEST, ROLE_OPERATOR, AccountStore, service_username
from iotctl.errors import InvalidInput, MissingDependency, OperationFailed, Unreachable
from iotctl.render import render
from iotctl.secretfiles import generate_password, read_secret, write_secret
from iotctl.stack.layout import DB_NAME, DB_OWNER
from iotctl.stack.mosquitto import AUTOSAVE_INTERVAL, AUTOSAVE_ON_CHANGES, MAX_PACKET_SIZE
from iots6_platform.core import contract

#: Official images, pinned to exact tags (bump deliberately; docs/docker.md lists them).
IMAGES = {
    "mosquitto": "eclipse-mosquitto:2.0.20",
    "timescaledb": "timescale/timescaledb:2.17.2-pg16",
    "grafana": "grafana/grafana:11.4.0",
    "prometheus": "prom/prometheus:v2.55.1",
}
SERVICES = ("mosquitto", "timescaledb", "migrate", "ingest", "config-server", "prometheus", "grafana")

#: Prometheus scrape jobs: job name -> (compose service, container port serving /metrics).
SCRAPE_TARGETS = {
    "ingest": ("ingest", 8081),
    "config-server": ("config-server", 8080),
}

#: secret name -> file under secrets/ (the Compose file names the same files).
SECRET_FILES = {
    "db": "db.password",
    "mqtt-ingest": "mqtt-ingest.password",
    "mqtt-config": "mqtt-config.password",
    "mqtt-operator": "mqtt-operator.password",
    "mqtt-admin": "mqtt-admin.password",
    "mqtt-probe": "mqtt-probe.conf",
    "config-admin-token": "config-admin-token",
    "grafana-admin": "grafana-admin.password",
}

#: Broker service clients and the secret holding each one's password.
_SERVICE_SECRETS = ((ROLE_INGEST, "mqtt-ingest"), (ROLE_CONFIG, "mqtt-config"), (ROLE_OPERATOR, "mqtt-operator"))

_NATIVE_HINT = "or run the native stack with `iotctl stack up`"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _repo_file(*parts: str) -> Path:
    return _REPO_ROOT.joinpath(*parts)


def service_environments(topic_base: str) -> dict[str, dict[str, str]]:
    """The ``environment:`` of the platform's Compose services, built from the services' own settings definition
    (:mod:`iots6_platform.core.settings`): names, types and ranges are checked here, not when a container starts.
    Secrets are Compose secrets under /run/secrets, named by the ``*_FILE`` variables."""
    from iots6_platform.core.settings import ConfigServerSettings, IngestSettings, MigrateSettings

    database_url = f"postgresql://{DB_OWNER}@timescaledb:5432/{DB_NAME}"
    return {
        "migrate": MigrateSettings.env(
            database_url=database_url,
            database_password_file="/run/secrets/db_password",
        ),
        "ingest": IngestSettings.env(
            mqtt_host="mosquitto",
            mqtt_port=1883,
            mqtt_username=service_username(ROLE_INGEST),
            mqtt_password_file="/run/secrets/mqtt_ingest_password",
            database_url=database_url,
            database_password_file="/run/secrets/db_password",
            topic_base=topic_base,
            http_bind="0.0.0.0",
            http_port=SCRAPE_TARGETS["ingest"][1],
        ),
        "config-server": ConfigServerSettings.env(
            bind="0.0.0.0",
            port=SCRAPE_TARGETS["config-server"][1],
            database_url=database_url,
            database_password_file="/run/secrets/db_password",
            admin_token_file="/run/secrets/config_admin_token",
            mqtt_host="mosquitto",
            mqtt_port=1883,
            mqtt_username=service_username(ROLE_CONFIG),
            mqtt_password_file="/run/secrets/mqtt_config_password",
            topic_base=topic_base,
        ),
    }


@dataclass(frozen=True)
class DockerOptions:
    """What the rendered stack publishes on the host. Defaults match the native stack's ports, so the CLI's
    default endpoints reach either stack."""

    project: str = "iots6"
    topic_base: str = contract.DEFAULT_TOPIC_BASE
    mqtt_port: int = 18830
    # The plaintext listener is published on the host's loopback only (DECISIONS §4); devices on the LAN use TLS.
    mqtt_bind: str = "127.0.0.1"
    mqtt_tls: bool = False  # TLS listener on 8883, published on 0.0.0.0 (certificate from the stack's CA)
    mqtt_tls_port: int = 8883
    mqtt_tls_bind: str = "0.0.0.0"
    #: Names the broker's TLS certificate is issued for, besides localhost and 127.0.0.1 (the host's LAN name/IP).
    mqtt_tls_hosts: tuple[str, ...] = ()
    pg_port: int = 15432
    pg_bind: str = "127.0.0.1"
    config_port: int = 18080
    config_bind: str = "0.0.0.0"  # devices fetch their config
    ingest_port: int = 18081
    ingest_bind: str = "127.0.0.1"
    grafana_port: int = 3000
    grafana_bind: str = "127.0.0.1"
    prometheus_port: int = 9090
    prometheus_bind: str = "127.0.0.1"
    scrape_interval_s: int = 15
    build_context: Path | None = field(
        default_factory=lambda: (
            _REPO_ROOT if _repo_file("pyproject.toml").exists() and _repo_file("services").is_dir() else None
        )
    )

    def validate(self) -> None:
        ports = (
            "mqtt_port",
            "mqtt_tls_port",
            "pg_port",
            "config_port",
            "ingest_port",
            "grafana_port",
            "prometheus_port",
        )
        for name in ports:
            value = getattr(self, name)
            if not 1 <= value <= 65535:
                raise InvalidInput(f"`{name}` must be a port from 1 to 65535, got {value}; pass a valid port.")
        if not 1 <= self.scrape_interval_s <= 3600:
            raise InvalidInput(
                f"`scrape_interval_s` must be 1 to 3600 seconds, got {self.scrape_interval_s}; pass a valid interval."
            )
        if not self.project.replace("-", "").replace("_", "").isalnum() or not self.project.islower():
            raise InvalidInput(
                f"Compose project name `{self.project}` is invalid; use lowercase letters, digits, `-` and `_`."
            )


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
        meta = self.directory / "stack-docker.json"
        if meta.exists():
            return json.loads(meta.read_text()).get("topic_base", contract.DEFAULT_TOPIC_BASE)
        return contract.DEFAULT_TOPIC_BASE

    # -- render
    def _secret(self, name: str) -> str:
        """The existing secret, or a newly generated one written 0600."""
        path = self.secret_file(name)
        if path.exists():
            return read_secret(path, f"Docker stack secret `{name}`")
        value = generate_password()
        write_secret(path, value + "\n")
        return value

    def render(self, options: DockerOptions | None = None) -> list[Path]:
        """Write (or refresh) every file of the stack directory; returns the files written."""
        options = options or DockerOptions()
        options.validate()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.secrets_dir.mkdir(exist_ok=True, mode=0o700)
        os.chmod(self.secrets_dir, 0o700)
        written: list[Path] = []

        passwords = {name: self._secret(name) for name in SECRET_FILES if name != "mqtt-probe"}
        written += [self.secret_file(n) for n in passwords]

        # The broker's accounts: seeded (or migrated from the password-file era) once, then the broker's own.
        self.mosquitto_config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._seed_broker_state(options, passwords):
            written.append(self.broker_state_file)

        # mosquitto_sub reads default options from $XDG_CONFIG_HOME/mosquitto_sub: the health probe's login.
        probe = f"-u {service_username(ROLE_OPERATOR)}\n-P {passwords['mqtt-operator']}\n"
        write_secret(self.secret_file("mqtt-probe"), probe)
        written.append(self.secret_file("mqtt-probe"))

        tls = None
        if options.mqtt_tls:
            written += self._ensure_certificates(options)
            tls = {
                "port": 8883,
                "bind": "0.0.0.0",
                "certfile": "/mosquitto/certs/server.crt",
                "keyfile": "/mosquitto/certs/server.key",
            }
        conf = self.mosquitto_config_dir / "mosquitto.conf"
        conf.write_text(
            render(
                "mosquitto/mosquitto.conf.j2",
                run_as_user=None,  # the container already runs as the stack owner (compose `user:`)
                dynsec_plugin=dynsec.IMAGE_PLUGIN_PATH,
                dynsec_state=f"/mosquitto/data/{dynsec.STATE_FILE}",
                port=1883,
                bind="0.0.0.0",
                tls=tls,
                persistence_dir="/mosquitto/data",
                autosave_interval=AUTOSAVE_INTERVAL,
                autosave_on_changes=AUTOSAVE_ON_CHANGES,
                max_queued_messages=1_000_000,
                max_inflight_messages=0,
                max_packet_size=MAX_PACKET_SIZE,
                persistent_client_expiration="30d",
                log_file=None,
                pid_file=None,
            )
        )
        written.append(conf)

        written += self._copy_grafana()
        written.append(self._render_prometheus(options))

        context = {
            "project": options.project,
            "version": __version__,
            "topic_base": options.topic_base,
            "db_user": DB_OWNER,
            "db_name": DB_NAME,
            "images": IMAGES,
            "tls": bool(tls),
            "build_context": str(options.build_context) if options.build_context else None,
            "environment": service_environments(options.topic_base),
        }
        self.compose_file.write_text(render("docker/compose.yaml.j2", **context))
        written.append(self.compose_file)
        env = render(
            "docker/env.j2",
            project=options.project,
            version=__version__,
            uid=os.getuid(),
            gid=os.getgid(),
            ports={
                "mqtt": options.mqtt_port,
                "mqtt_bind": options.mqtt_bind,
                "mqtt_tls": options.mqtt_tls_port,
                "mqtt_tls_bind": options.mqtt_tls_bind,
                "pg": options.pg_port,
                "pg_bind": options.pg_bind,
                "config": options.config_port,
                "config_bind": options.config_bind,
                "ingest": options.ingest_port,
                "ingest_bind": options.ingest_bind,
                "grafana": options.grafana_port,
                "grafana_bind": options.grafana_bind,
                "prometheus": options.prometheus_port,
                "prometheus_bind": options.prometheus_bind,
            },
            db_password=passwords["db"],
            grafana_admin_password=passwords["grafana-admin"],
        )
        write_secret(self.env_file, env)
        written.append(self.env_file)
        meta = self.directory / "stack-docker.json"
        meta.write_text(
            json.dumps(
                {"project": options.project, "topic_base": options.topic_base, "version": __version__},
                indent=2,
            )
            + "\n"
        )
        written.append(meta)
        return written

    def _seed_broker_state(self, options: DockerOptions, passwords: dict[str, str]) -> bool:
        """Write ``dynamic-security.json`` when there is none; True if written.  A stack rendered before dynamic
        security (``mosquitto/config/accounts.json``) is migrated: devices keep their passwords, the old files are
        renamed ``*.pre-dynsec``."""
        if self.broker_state_file.exists():
            return False
        self.mosquitto_data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        services = {role: passwords[secret] for role, secret in _SERVICE_SECRETS}
        old = AccountStore(self.mosquitto_config_dir, options.topic_base).load()
        if old:
            state = dynsec.state_from_registry(old, passwords["mqtt-admin"], options.topic_base, services)
        else:
            state = dynsec.seed_state(passwords["mqtt-admin"], options.topic_base, services)
        write_secret(self.broker_state_file, json.dumps(state, indent=2) + "\n")
        for name in ("accounts.json", "passwd", "acl"):
            path = self.mosquitto_config_dir / name
            if path.exists():
                path.rename(path.with_name(name + ".pre-dynsec"))
        return True

    def _ensure_certificates(self, options: DockerOptions) -> list[Path]:
        """The broker's TLS certificate in ``mosquitto/certs``, issued by the stack's CA (``pki/``), for
        localhost, 127.0.0.1 and ``mqtt_tls_hosts``; reused while still good."""
        from iotctl import pki

        ca = pki.ensure_ca(self.directory / "pki", common_name=f"iots6 Docker stack CA ({options.project})")
        names = ["localhost", *options.mqtt_tls_hosts]
        dns = [n for n in names if not _is_ip(n)]
        ips = ["127.0.0.1", *(n for n in names if _is_ip(n))]
        certs = self.directory / "mosquitto" / "certs"
        pair = pki.issue_server_cert(ca, certs, "server", dns_names=dns, ip_addresses=ips)
        # Mosquitto runs as the stack owner in the container and reads them through a read-only bind mount.
        return [ca.cert, pair.cert, pair.key]

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
            for role, secret in _SERVICE_SECRETS
        }
        with dynsec.DynsecAdmin(self.admin_endpoint(port, host)) as admin:
            return dynsec.ensure_platform(
                admin, self._topic_base(), services, dynsec.load_state(self.broker_state_file)
            )

    @property
    def prometheus_config(self) -> Path:
        return self.directory / "prometheus" / "prometheus.yml"

    def _render_prometheus(self, options: DockerOptions) -> Path:
        """The scrape configuration, bind-mounted read-only into the `prometheus` service (no secret in it)."""
        target = self.prometheus_config
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            render(
                "docker/prometheus.yml.j2",
                project=options.project,
                scrape_interval_s=options.scrape_interval_s,
                targets=SCRAPE_TARGETS,
            )
        )
        # Prometheus runs as its image's `nobody` user and reads this through a bind mount: world-readable.
        os.chmod(target.parent, 0o755)
        os.chmod(target, 0o644)
        return target

    def _copy_grafana(self) -> list[Path]:
        source = _repo_file("infra", "grafana")
        if not source.is_dir():
            raise MissingDependency(
                f"Grafana provisioning `{source}` is missing; run iotctl from a checkout of the repository."
            )
        written = []
        for sub in ("provisioning", "dashboards"):
            target = self.directory / "grafana" / sub
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source / sub, target)
            written += [p for p in target.rglob("*") if p.is_file()]
        # Grafana (uid 472 in its image) reads these via a bind mount: world-readable, they hold no secret.
        for path in (self.directory / "grafana").rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chmod(self.directory / "grafana", 0o755)
        return written

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
