"""Environments on disk: resolving the active one (and the built-in ``local``/``docker``), loading, listing,
registering (0600 files, one per secret) and removing them."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from iotctl.endpoints import DbEndpoint, MqttEndpoint
from iotctl.environments.model import (
    _SECRET_WHAT,
    BUILTIN,
    CA_CERT,
    CONFIG_ADMIN,
    CREDENTIALS_FILES,
    DB_DIRECT,
    DB_JOB,
    DB_PASSWORD,
    KEYVAULT_PREFIX,
    KINDS,
    MQTT_ADMIN,
    MQTT_OPERATOR,
    NAME_PATTERN,
    SECRETS,
    BrokerTarget,
    DatabaseTarget,
    Environment,
)
from iotctl.errors import InvalidInput, NotFound
from iotctl.secretfiles import read_secret, write_secret
from iotctl.settings import Settings

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
