"""Named environments: where a platform runs and how iotctl reaches it, like kubectl contexts.

An environment holds the broker's address (and TLS CA), the config server's URL, how to reach the database for
migrations (and, on the local stacks, the device registry), where the operator's credentials are, and the
platform's kind:

==========  ===========================================================================================
``local``   the native stack of ``state_dir`` (built in, the default; also ``kind`` of a second stack)
``docker``  the Docker Compose stack in ``<state_dir>/docker`` (built in as ``docker``)
``vm``      a VM deployment (``deploy vm`` registers it); devices are registered through its config server
``aks``     an AKS namespace (``deploy aks`` registers it); credentials may come from Key Vault, the
            database may be reachable only through a migration Job in the cluster, devices are registered
            through its config server
==========  ===========================================================================================

The built-in ``local`` and ``docker`` environments are derived from the settings (ports, state dir, explicit
``IOTCTL_MQTT_*`` / ``IOTCTL_DATABASE_*`` / ``IOTCTL_CONFIG_*`` values) exactly as before environments existed.
Any other environment is a file, written 0600 by :func:`register_environment`::

    <state_dir>/environments/<name>.toml          what to reach (no secret in it)
    <state_dir>/environments/<name>/              0700: one 0600 file per secret, named as in Key Vault
                                                  (a Key Vault environment, ``keyvault:<uri>``, keeps only the CA
                                                  here and reads the others from its vault when a command needs them)
        mqtt-admin-password                       the broker's dynamic-security `admin` (provisioning)
        mqtt-operator-password                    `svc.operator` (tail)
        config-admin-token                        the config server's admin API (config; the device registry of
                                                  a vm or aks environment)
        postgres-admin-password                   the database user of `database.url` (migrations; the registry
                                                  of a local kind)
        tls-ca-crt                                the CA that signed the broker's (and config server's) certificate
        devices/<id>.json                         credentials of devices provisioned in this environment

A registered environment is complete in itself: the per-value settings (``mqtt_host``, ``database_url`` ...)
do not change it (``iotctl settings`` shows which values it supplies); re-register it to change it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from iotctl.endpoints import DbEndpoint, MqttEndpoint
from iotctl.errors import InvalidInput, NotFound, OperationFailed
from iotctl.secretfiles import read_secret, write_secret
from iotctl.settings import DEFAULT, Settings

KINDS = ("local", "docker", "vm", "aks")
#: Kinds whose device registry iotctl writes through the config server's admin API, never the database.
API_REGISTRY_KINDS = ("vm", "aks")
BUILTIN = ("local", "docker")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
DB_DIRECT, DB_JOB = "direct", "job"
CREDENTIALS_FILES = "files"
KEYVAULT_PREFIX = "keyvault:"

# Secret names: the same in an environment's credentials directory and in its Key Vault (DECISIONS §6).
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


# ------------------------------------------------------------------------------------------------- resolving


def environments_dir(settings_or_state_dir: Settings | Path) -> Path:
    state_dir = getattr(settings_or_state_dir, "state_dir", settings_or_state_dir)
    return Path(state_dir) / "environments"


def mqtt_endpoint(settings: Settings) -> MqttEndpoint:
    """The operator's login on the active environment's broker."""
    return active(settings).operator_endpoint()


def db_endpoint(settings: Settings) -> DbEndpoint:
    """The active environment's database (URL without password, and the password)."""
    return active(settings).db_endpoint()


def active(settings: Settings) -> Environment:
    """The environment the settings select (``env``; ``local`` follows the ``docker`` setting)."""
    name = settings.env
    if name == "local":
        return builtin(settings, "docker" if settings.docker else "local")
    if name == "docker":
        return builtin(settings, "docker")
    return load(settings, name)


def builtin(settings: Settings, kind: str) -> Environment:
    """The built-in environment of the local native stack (``local``) or the local Docker stack (``docker``)."""
    protocol = "5"
    if kind == "local":
        from iotctl.stack.layout import StackLayout

        try:
            recorded = json.loads(StackLayout(settings.state_dir).stack_file.read_text())
        except (OSError, ValueError):
            recorded = {}
        protocol = "3.1.1" if recorded.get("engine") == "embedded" else "5"
    from iotctl.stack.layout import DB_NAME, DB_OWNER

    return Environment(
        name=settings.env if settings.env in BUILTIN else "local",
        kind=kind,
        # The built-ins talk plaintext to their own broker on this machine; a stack's TLS listener
        # (`mqtt_tls_port`) is for devices and for registering the stack as an environment of its own.
        broker=BrokerTarget(settings.mqtt_host, settings.mqtt_port, False, protocol),
        config_url=settings.config_url or f"http://127.0.0.1:{settings.config_port}",
        database=DatabaseTarget(
            DB_DIRECT, settings.database_url or f"postgresql://{DB_OWNER}@127.0.0.1:{settings.pg_port}/{DB_NAME}"
        ),
        topic_base=settings.topic_base,
        description="the local Docker stack" if kind == "docker" else "the local native stack",
        settings=settings,
    )


def validate_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise InvalidInput(
            f"Environment name `{name}` is invalid; use 1-40 characters: a lowercase letter, then lowercase "
            "letters, digits and `-`."
        )
    return name


def _paths(settings_or_state_dir, name: str) -> tuple[Path, Path]:
    base = environments_dir(settings_or_state_dir)
    return base / f"{name}.toml", base / name


def load(settings: Settings | Path, name: str) -> Environment:
    validate_name(name)
    file, home = _paths(settings, name)
    if not file.exists():
        known = ", ".join(list(BUILTIN) + [e.name for e in list_environments(settings, builtins=False)])
        raise NotFound(
            f"Environment `{name}` is not registered in `{file.parent}`; known: {known}. Add it with "
            f"`iotctl env add {name} …` or pick another with --env/IOTCTL_ENV."
        )
    try:
        data = tomllib.loads(file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"Environment file `{file}` cannot be read ({exc}); fix or remove it.") from None
    return _from_dict(data, file, home, settings if isinstance(settings, Settings) else None)


def _from_dict(data: dict[str, Any], file: Path, home: Path, settings: Settings | None) -> Environment:
    def fail(what: str) -> InvalidInput:
        return InvalidInput(f"Environment file `{file}`: {what}; fix it or re-register with `iotctl env add --force`.")

    known = {"name", "kind", "topic_base", "config_url", "credentials", "description", "created", "broker", "database"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise fail(f"unknown key `{unknown[0]}`")
    broker = data.get("broker")
    if not isinstance(broker, dict) or not isinstance(broker.get("host"), str):
        raise fail("`[broker]` needs `host` and `port`")
    database = data.get("database", {})
    try:
        env = Environment(
            name=str(data.get("name") or file.stem),
            kind=str(data.get("kind", "")),
            broker=BrokerTarget(
                broker["host"], int(broker["port"]), bool(broker.get("tls", False)), str(broker.get("protocol", "5"))
            ),
            config_url=str(data.get("config_url", "")),
            database=DatabaseTarget(str(database.get("access", DB_DIRECT)), database.get("url")),
            credentials=str(data.get("credentials", CREDENTIALS_FILES)),
            topic_base=str(data.get("topic_base", "iots6")),
            description=str(data.get("description", "")),
            created=str(data.get("created", "")),
            file=file,
            home=home,
            settings=settings,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise fail(f"bad value ({exc})") from None
    _check(env, fail)
    return env


def _check(env: Environment, fail) -> None:
    if env.kind not in KINDS:
        raise fail(f"`kind` must be one of {', '.join(KINDS)}, got `{env.kind}`")
    if not 1 <= env.broker.port <= 65535:
        raise fail(f"`broker.port` must be 1-65535, got {env.broker.port}")
    if env.broker.protocol not in ("5", "3.1.1"):
        raise fail(f"`broker.protocol` must be 5 or 3.1.1, got `{env.broker.protocol}`")
    if urlsplit(env.config_url).scheme not in ("http", "https"):
        raise fail(f"`config_url` must be an http(s) URL, got `{env.config_url}`")
    if env.database.access not in (DB_DIRECT, DB_JOB):
        raise fail(f"`database.access` must be {DB_DIRECT} or {DB_JOB}, got `{env.database.access}`")
    if env.database.url:  # direct, or a job environment's path for this machine (a port-forward, a VPN)
        parts = urlsplit(env.database.url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise fail("`database.url` must be a postgresql:// URL")
        if parts.password:
            raise fail("`database.url` must not contain a password (it goes in the credentials)")
    if env.credentials != CREDENTIALS_FILES and not env.credentials.startswith(KEYVAULT_PREFIX + "https://"):
        raise fail(f"`credentials` must be `{CREDENTIALS_FILES}` or `keyvault:https://<vault>…`")


def list_environments(settings: Settings | Path, *, builtins: bool = True) -> list[Environment]:
    found = []
    if builtins and isinstance(settings, Settings):
        found += [
            builtin(settings.model_copy(update={"env": "local"}), "local"),
            builtin(settings.model_copy(update={"env": "docker"}), "docker"),
        ]
    base = environments_dir(settings)
    for file in sorted(base.glob("*.toml")) if base.is_dir() else []:
        if NAME_PATTERN.match(file.stem):
            found.append(load(settings, file.stem))
    return found


# ----------------------------------------------------------------------------------------------- registering


def register_environment(
    state_dir: Path,
    name: str,
    kind: str,
    *,
    broker_host: str,
    broker_port: int,
    broker_tls: bool = True,
    config_url: str,
    database_url: str | None = None,
    database_access: str = DB_DIRECT,
    credentials: str = CREDENTIALS_FILES,
    secrets: dict[str, str | Path] | None = None,
    topic_base: str = "iots6",
    description: str = "",
    protocol: str = "5",
    replace: bool = False,
) -> Environment:
    """Write environment ``name`` under ``<state_dir>/environments`` (what `deploy vm`/`deploy aks` call).

    ``secrets``: secret name (:data:`SECRETS`) -> its value, or a Path to a file holding it; each is copied into
    the environment's 0600 credentials directory.  With ``replace`` an existing environment is overwritten (its
    device credentials are kept); without, it is an error.
    """
    state_dir = Path(state_dir)
    validate_name(name)
    if name in BUILTIN:
        raise InvalidInput(f"`{name}` is a built-in environment; choose another name.")
    file, home = _paths(state_dir, name)
    if file.exists() and not replace:
        raise InvalidInput(f"Environment `{name}` exists (`{file}`); pass --force to replace it.")
    env = Environment(
        name=name,
        kind=kind,
        broker=BrokerTarget(broker_host, int(broker_port), broker_tls, protocol),
        config_url=config_url,
        database=DatabaseTarget(database_access, database_url),
        credentials=credentials,
        topic_base=topic_base,
        description=description,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        file=file,
        home=home,
    )
    _check(env, lambda what: InvalidInput(f"Environment `{name}`: {what}; fix the value you passed."))
    unknown = sorted(set(secrets or {}) - set(SECRETS))
    if unknown:
        raise InvalidInput(f"Unknown secret `{unknown[0]}`; environments hold {', '.join(SECRETS)}.")
    values = {}
    for secret_name, value in (secrets or {}).items():
        if isinstance(value, Path):
            what = f"{_SECRET_WHAT[secret_name]} for `{name}`"
            value = value.read_text() if secret_name == CA_CERT else read_secret(value, what)
        values[secret_name] = value.strip() + "\n"
    if credentials.startswith(KEYVAULT_PREFIX) and set(values) - {CA_CERT}:
        raise InvalidInput(
            f"Environment `{name}` reads its credentials from Key Vault; do not also pass credential files."
        )
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home.parent, 0o700)
    os.chmod(home, 0o700)
    for secret_name, value in values.items():
        write_secret(home / secret_name, value)
    write_secret(file, _to_toml(env))
    return env


def secrets_from_dir(directory: Path) -> dict[str, Path]:
    """The secret files (named as in :data:`SECRETS`) found in ``directory``; at least one must be there."""
    directory = Path(directory)
    found = {name: directory / name for name in SECRETS if (directory / name).is_file()}
    if not found:
        raise InvalidInput(f"No credential files in `{directory}`; it should hold files named {', '.join(SECRETS)}.")
    return found


def register_stack(
    state_dir: Path,
    name: str,
    stack_dir: Path,
    *,
    kind: str = "local",
    host: str = "127.0.0.1",
    description: str = "",
    replace: bool = False,
) -> Environment:
    """Register the native stack of ``stack_dir`` (another state dir, e.g. a second local stack on other ports)
    as environment ``name``: over its TLS listener with its CA when it has one, with its secret files."""
    from iotctl.stack.layout import StackLayout

    layout = StackLayout(Path(stack_dir))
    try:
        recorded = json.loads(layout.stack_file.read_text())
    except (OSError, ValueError):
        raise NotFound(
            f"No native stack in `{stack_dir}` (no readable stack.json); start it with "
            f"`IOTCTL_STATE_DIR={stack_dir} iotctl stack up` first."
        ) from None
    if recorded.get("engine") == "embedded":
        raise InvalidInput(
            f"The stack in `{stack_dir}` runs the embedded broker, which has no dynamic security to provision "
            "devices through; register a stack of the `system` engine."
        )
    endpoints = recorded.get("endpoints", {})
    tls = endpoints.get("mqtt_tls")
    mqtt = tls or endpoints.get("mqtt") or {}
    if not mqtt.get("port"):
        raise InvalidInput(f"The stack record `{layout.stack_file}` names no broker port; run `iotctl stack up` there.")
    secrets: dict[str, str | Path] = {
        MQTT_ADMIN: layout.secret("mqtt-admin"),
        MQTT_OPERATOR: layout.secret("operator"),
        CONFIG_ADMIN: layout.secret("admin-token"),
        DB_PASSWORD: layout.secret("db"),
    }
    if tls:
        secrets[CA_CERT] = Path(tls["ca_file"])
    config = endpoints.get("config_server")
    if not config:
        raise InvalidInput(f"The stack in `{stack_dir}` runs no config server; install the services and run it up.")
    return register_environment(
        state_dir,
        name,
        kind,
        broker_host=host,
        broker_port=int(mqtt["port"]),
        broker_tls=bool(tls),
        config_url=config,
        database_url=endpoints.get("postgres"),
        secrets=secrets,
        topic_base=endpoints.get("mqtt", {}).get("topic_base", "iots6"),
        description=description or f"the native stack in {stack_dir}",
        replace=replace,
    )


def remove_environment(state_dir: Path, name: str) -> Path:
    """Delete a registered environment: its file and its credentials directory (device credentials included)."""
    validate_name(name)
    if name in BUILTIN:
        raise InvalidInput(f"`{name}` is a built-in environment and cannot be removed.")
    file, home = _paths(state_dir, name)
    if not file.exists():
        raise NotFound(f"Environment `{name}` is not registered in `{file.parent}`; `iotctl env list` shows them.")
    file.unlink()
    if home.exists():
        shutil.rmtree(home)
    return file


def _to_toml(env: Environment) -> str:
    """The environment's TOML (strings through JSON's escaping, which TOML basic strings accept)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return json.dumps(str(v))

    lines = [
        f"# iotctl environment `{env.name}`: what to reach, no secret (those are in `{env.name}/`, 0600).",
        "# Written by iotctl; change it with `iotctl env add --force`.",
        f"name = {value(env.name)}",
        f"kind = {value(env.kind)}",
        f"topic_base = {value(env.topic_base)}",
        f"config_url = {value(env.config_url)}",
        f"credentials = {value(env.credentials)}",
        f"description = {value(env.description)}",
        f"created = {value(env.created)}",
        "",
        "[broker]",
        f"host = {value(env.broker.host)}",
        f"port = {value(env.broker.port)}",
        f"tls = {value(env.broker.tls)}",
        f"protocol = {value(env.broker.protocol)}",
        "",
        "[database]",
        f"access = {value(env.database.access)}",
    ]
    if env.database.url:
        lines.append(f"url = {value(env.database.url)}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- iotctl settings


#: Settings that describe the platform; a registered environment supplies these itself.
PLATFORM_SETTINGS = (
    "topic_base",
    "mqtt_host",
    "mqtt_port",
    "mqtt_username",
    "mqtt_password_file",
    "pg_port",
    "database_url",
    "database_password_file",
    "config_port",
    "config_url",
    "config_admin_token_file",
    "docker",
)


def describe_settings(settings: Settings, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``iotctl settings`` rows with the active environment applied: a registered environment's values replace
    the platform settings (an explicitly set one is marked as ignored)."""
    if settings.env in BUILTIN:
        return rows
    env = active(settings)
    supplied = {
        "topic_base": env.topic_base,
        "mqtt_host": env.broker.host,
        "mqtt_port": str(env.broker.port),
        "mqtt_username": "svc.operator",
        "mqtt_password_file": str(env.secret_file(MQTT_OPERATOR) or env.credentials),
        "database_url": env.database.url,
        "database_password_file": str(env.secret_file(DB_PASSWORD) or env.credentials),
        "config_url": env.config_url,
        "config_admin_token_file": str(env.secret_file(CONFIG_ADMIN) or env.credentials),
    }
    out = []
    for row in rows:
        key = row["key"]
        if key in PLATFORM_SETTINGS:
            row = dict(row)
            ignored = row["source"] != DEFAULT
            row["value"] = supplied.get(key)
            row["source"] = f"environment `{env.name}` ({env.file})"
            if ignored:
                row["source"] += f"; {settings.sources[key]} ignored"
        out.append(row)
    return out
