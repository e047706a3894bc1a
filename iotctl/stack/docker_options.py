"""What the Docker Compose stack is made of, the options it is rendered with and its services' environment (no I/O
here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iotctl.broker.accounts import ROLE_CONFIG, ROLE_INGEST, SERVICE_ROLES, service_username
from iotctl.errors import InvalidInput
from iotctl.packaged import source_checkout
from iotctl.stack.layout import DB_NAME, DB_OWNER
from iots6_platform.core import contract

#: Official images, pinned to exact tags (bump deliberately; docs/docker.md lists them).
IMAGES = {
    "mosquitto": "eclipse-mosquitto:2.0.20",
    "timescaledb": "timescale/timescaledb:2.17.2-pg16",
    "grafana": "grafana/grafana:11.4.0",
    "prometheus": "prom/prometheus:v2.55.1",
}
SERVICES = ("mosquitto", "timescaledb", "migrate", "ingest", "config-server", "prometheus", "grafana")

#: Our own images (services/Dockerfile targets), tagged with iotctl's version (``IOTS6_VERSION`` in .env overrides):
#: built from a source checkout, or prebuilt (loaded or pulled beforehand) when iotctl runs from a wheel.
BUILT_IMAGES = {"migrate": "iots6/migrate", "ingest": "iots6/ingest", "config-server": "iots6/config-server"}
#: Named volumes (compose.yaml.j2) that ``down --reset`` deletes.
VOLUMES = ("pgdata", "grafana_data", "prometheus_data")

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

#: Broker service clients: role -> the secret holding its password.
SERVICE_SECRETS = {role: f"mqtt-{role}" for role in SERVICE_ROLES}


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
    #: Where the service images are built from: the source checkout iotctl runs from, else None (an installed
    #: wheel has no sources to build from: the stack uses the prebuilt ``iots6/<service>:<version>`` images).
    build_context: Path | None = field(default_factory=lambda: source_checkout())

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
