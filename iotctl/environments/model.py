"""What an environment is: its kind, its broker, its database, its secrets (:class:`Environment`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iotctl.endpoints import DbEndpoint, MqttEndpoint
from iotctl.errors import InvalidInput, NotFound, OperationFailed
from iotctl.secretfiles import read_secret
from iotctl.settings import Settings

KINDS = ("local", "docker", "vm", "aks")
#: Kinds whose device registry iotctl writes through the config server's admin API, never the database.
API_REGISTRY_KINDS = ("vm", "aks")
BUILTIN = ("local", "docker")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
DB_DIRECT, DB_JOB = "direct", "job"
CREDENTIALS_FILES = "files"
KEYVAULT_PREFIX = "keyvault:"

# Secret names: the same in an environment's credentials directory and in its Key Vault (docs/decisions.md §6).
MQTT_ADMIN = "mqtt-admin-password"
MQTT_OPERATOR = "mqtt-operator-password"
CONFIG_ADMIN = "config-admin-token"
DB_PASSWORD = "postgres-admin-password"
CA_CERT = "tls-ca-crt"
SECRETS = (MQTT_ADMIN, MQTT_OPERATOR, CONFIG_ADMIN, DB_PASSWORD, CA_CERT)
_SECRET_WHAT = {
    MQTT_ADMIN: "broker admin password",
    MQTT_OPERATOR: "broker operator password",
    CONFIG_ADMIN: "config server admin token",
    DB_PASSWORD: "database password",
    CA_CERT: "CA certificate",
}
# The built-in stacks' names for those secrets (``Stack.secret_file``).
_STACK_SECRET = {MQTT_ADMIN: "mqtt-admin", MQTT_OPERATOR: "operator", CONFIG_ADMIN: "admin-token", DB_PASSWORD: "db"}
_SETTING_FOR_SECRET = {
    MQTT_OPERATOR: "mqtt_password_file",
    CONFIG_ADMIN: "config_admin_token_file",
    DB_PASSWORD: "database_password_file",
}


@dataclass(frozen=True)
class BrokerTarget:
    host: str
    port: int
    tls: bool = False
    protocol: str = "5"  # "3.1.1" for the embedded broker

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass(frozen=True)
class DatabaseTarget:
    access: str = DB_DIRECT  # direct | job (a migration Job in the cluster, AKS)
    #: postgresql://user@host:port/db, never with a password. With ``job``: optional, this machine's own path to
    #: the database (a port-forward, a VPN) for the commands that need it besides migrations.
    url: str | None = None


@dataclass(frozen=True)
class Environment:
    """Everything iotctl needs to reach one platform; secrets stay behind ``secret()``."""

    name: str
    kind: str
    broker: BrokerTarget
    config_url: str
    database: DatabaseTarget
    credentials: str = CREDENTIALS_FILES  # "files" or "keyvault:<vault uri>"
    topic_base: str = "iots6"
    description: str = ""
    created: str = ""
    #: Its TOML file (None for the built-ins) and its home: credential files and device credentials.
    file: Path | None = None
    home: Path | None = None
    #: The settings it was resolved with (the built-ins read their stack from them).
    settings: Settings | None = field(default=None, compare=False, repr=False)

    # -- where things are
    @property
    def builtin(self) -> bool:
        return self.file is None

    @property
    def label(self) -> str:
        return f"environment `{self.name}`"

    @property
    def registry_via_api(self) -> bool:
        """Whether the device registry (``device provision|retire|fleet``) is written through the config server's
        admin API (a VM or AKS deployment, whose database is private to it) rather than in the database directly
        (the local stacks)."""
        return self.kind in API_REGISTRY_KINDS

    @property
    def devices_dir(self) -> Path:
        if self.builtin:
            from iotctl.stack.layout import StackLayout

            return StackLayout(self._settings.state_dir).devices_dir
        return self.home / "devices"

    @property
    def _settings(self) -> Settings:
        if self.settings is None:
            raise OperationFailed(f"{self.label} was built without settings; resolve it with `active(settings)`.")
        return self.settings

    # -- secrets
    @property
    def keyvault_url(self) -> str | None:
        """The Key Vault holding this environment's credentials (None: they are files)."""
        return self.credentials[len(KEYVAULT_PREFIX) :] if self.credentials.startswith(KEYVAULT_PREFIX) else None

    def secret_file(self, name: str) -> Path | None:
        """The file holding secret ``name`` (None when it lives in a Key Vault; the CA certificate, public, is
        always a file: TLS clients read it from one)."""
        if self.keyvault_url and name != CA_CERT:
            return None
        if not self.builtin:
            return self.home / name
        settings = self._settings
        explicit = _SETTING_FOR_SECRET.get(name)
        if explicit and getattr(settings, explicit):
            return Path(getattr(settings, explicit))
        if name == CA_CERT:
            from iotctl.stack.layout import StackLayout

            return StackLayout(settings.state_dir).ca_file
        from iotctl.stack import local_stack

        return local_stack(settings, docker=self.kind == "docker").secret_file(_STACK_SECRET[name])

    def secret(self, name: str) -> str:
        """Secret ``name`` of this environment, read from its file or its Key Vault (never cached on disk)."""
        path = self.secret_file(name)
        if path is None and self.keyvault_url:
            from iotctl.secrets.vault import KeyVault

            return KeyVault(self.keyvault_url).read(name, what=f"the {_SECRET_WHAT[name]} of {self.label}")
        if path is None or not path.exists():
            fix = (
                "run `iotctl stack up`"
                if self.builtin
                else f"copy it there (0600) or re-register with `iotctl env add {self.name} --force …`"
            )
            raise NotFound(f"The {_SECRET_WHAT[name]} of {self.label} is missing (`{path}`); {fix}.")
        return read_secret(path, f"{self.label}: {_SECRET_WHAT[name]}")

    @property
    def ca_file(self) -> Path | None:
        """The CA file for TLS connections (None: the system's trust store)."""
        if not self.broker.tls and not self.config_url.startswith("https:"):
            return None
        path = self.secret_file(CA_CERT)
        return path if path is not None and path.exists() else None

    # -- endpoints
    def operator_endpoint(self):
        """The operator's broker login (``svc.operator``, or the explicit ``mqtt_username`` of a built-in)."""
        from iotctl.broker.accounts import ROLE_OPERATOR, service_username

        username = service_username(ROLE_OPERATOR)
        if self.builtin and self._settings.mqtt_username:
            username = self._settings.mqtt_username
            if not self._settings.mqtt_password_file:
                raise NotFound(
                    "`mqtt_username` is set without `mqtt_password_file`; set IOTCTL_MQTT_PASSWORD_FILE as well."
                )
        elif self.builtin and not self.secret_file(MQTT_OPERATOR).exists():
            raise NotFound(
                f"No broker credentials in `{self._settings.state_dir}`; run `iotctl stack up` or set "
                "IOTCTL_MQTT_USERNAME and IOTCTL_MQTT_PASSWORD_FILE."
            )
        return self._mqtt(username, self.secret(MQTT_OPERATOR))

    def admin_endpoint(self):
        """The broker's dynamic-security ``admin`` login (provisioning)."""
        from iotctl.broker.dynsec import ADMIN_USERNAME

        return self._mqtt(ADMIN_USERNAME, self.secret(MQTT_ADMIN))

    def _mqtt(self, username: str, password: str):

        b = self.broker
        return MqttEndpoint(
            b.host,
            b.port,
            username,
            password,
            b.protocol,
            tls=b.tls,
            ca_file=self.ca_file,
            env="" if self.builtin else self.name,
        )

    def db_endpoint(self):

        if self.database.access == DB_JOB and not self.database.url:
            raise OperationFailed(
                f"{self.label} reaches its database only from inside its cluster: `iotctl db migrate --env "
                f"{self.name}` runs the migration Job there, and `device provision|retire|fleet` go through the config "
                "server; `db status` needs a path to the database itself: open one and pass it as --database-url to "
                f"`iotctl deploy aks --env {self.name}` (docs/deploy-aks.md, Operating an environment)."
            )
        if self.builtin:
            s = self._settings
            if s.database_url:
                password = self.secret(DB_PASSWORD) if s.database_password_file else None
                return DbEndpoint(s.database_url, password)
            if not self.secret_file(DB_PASSWORD).exists():
                raise NotFound(
                    f"No database credentials in `{s.state_dir}`; run `iotctl stack up` or set "
                    "IOTCTL_DATABASE_URL (and IOTCTL_DATABASE_PASSWORD_FILE)."
                )
        if not self.database.url:
            raise InvalidInput(f"{self.label} has no `database.url`; re-register it with --database-url.")
        return DbEndpoint(self.database.url, self.secret(DB_PASSWORD), env="" if self.builtin else self.name)

    def config_token_file(self) -> Path | None:
        return self.secret_file(CONFIG_ADMIN)

    def identities(self):
        """The broker's provisioning interface (``iotctl.broker.identities``), not yet connected."""
        from iotctl.broker.dynsec import DynsecAdmin
        from iotctl.broker.identities import DynsecIdentities, EmbeddedIdentities

        if self.kind == "local" and self.builtin and self._recorded_engine() == "embedded":
            from iotctl.stack.embedded_broker import EmbeddedBroker
            from iotctl.stack.layout import StackLayout

            s = self._settings
            return EmbeddedIdentities(EmbeddedBroker(StackLayout(s.state_dir).mosquitto_dir, s.mqtt_port))
        where = f"`{self.broker.url}` of {self.label}"
        return DynsecIdentities(DynsecAdmin(self.admin_endpoint(), where=where), self.topic_base)

    def _recorded_engine(self) -> str | None:
        from iotctl.stack.layout import StackLayout

        try:
            return json.loads(StackLayout(self._settings.state_dir).stack_file.read_text()).get("engine")
        except (OSError, ValueError):
            return None

    # -- description
    def public(self) -> dict[str, Any]:
        """What ``env show`` prints: no secret, only where each one is and whether it is there."""
        secrets = {}
        for name in SECRETS:
            path = self.secret_file(name)
            secrets[name] = {
                "file": str(path) if path else None,
                "present": bool(path and path.exists()),
            }
        return {
            "name": self.name,
            "kind": self.kind,
            "builtin": self.builtin,
            "file": str(self.file) if self.file else None,
            "broker": self.broker.url,
            "broker_ca": str(self.ca_file) if self.ca_file else None,
            "config_url": self.config_url,
            "database": {"access": self.database.access, "url": self.database.url},
            "device_registry": "config server API" if self.registry_via_api else "database",
            "credentials": self.credentials,
            "secrets": secrets,
            "devices_dir": str(self.devices_dir) if self.settings or not self.builtin else None,
            "topic_base": self.topic_base,
            "description": self.description,
            "created": self.created or None,
        }
