"""How the CLI reaches the broker and the database: through the active environment (``iotctl.environments``).

The built-in ``local`` environment keeps the old rules: explicit settings first, else the native (or, with
``docker``, the Docker) stack's files.  A registered environment brings its own addresses and credential files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from iotctl.settings import Settings


@dataclass(frozen=True)
class MqttEndpoint:
    host: str
    port: int
    username: str
    password: str = ""
    protocol: str = "5"  # or "3.1.1" (the embedded broker)
    tls: bool = False
    ca_file: Path | None = None  # None with tls: the system's trust store
    env: str = ""  # the registered environment's name, for error messages; empty for the built-in stacks

    def __repr__(self) -> str:  # never print the password
        return f"MqttEndpoint({self.username}@{self.url} v{self.protocol})"

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def where(self) -> str:
        """The broker, named for a message: "`mqtts://h:8883` of environment `prod`"."""
        return f"`{self.url}`" + (f" of environment `{self.env}`" if self.env else "")


@dataclass(frozen=True)
class DbEndpoint:
    url: str  # postgresql://user@host:port/db, without the password
    password: str | None = None
    env: str = ""  # as in MqttEndpoint

    def __repr__(self) -> str:
        return f"DbEndpoint({self.url})"


# Secret names of the native stack -> the Docker stack's (iotctl.stack.docker.SECRET_FILES).
_DOCKER_SECRETS = {
    "operator": "mqtt-operator",
    "db": "db",
    "admin-token": "config-admin-token",
    "mqtt-admin": "mqtt-admin",
}


def stack_secret(settings: Settings, name: str, docker: bool | None = None) -> Path:
    """Where the local stack keeps secret ``name`` (operator, db, admin-token, mqtt-admin): native, or Docker when
    ``docker`` (default: the `docker` setting)."""
    if settings.docker if docker is None else docker:
        from iotctl.stack.docker import DockerStack

        return DockerStack(settings.state_dir / "docker").secret_file(_DOCKER_SECRETS[name])
    from iotctl.stack.layout import StackLayout

    return StackLayout(settings.state_dir).secret(name)


def mqtt_endpoint(settings: Settings) -> MqttEndpoint:
    """The operator's login on the active environment's broker."""
    from iotctl.environments import active

    return active(settings).operator_endpoint()


def db_endpoint(settings: Settings) -> DbEndpoint:
    """The active environment's database (URL without password, and the password)."""
    from iotctl.environments import active

    return active(settings).db_endpoint()
