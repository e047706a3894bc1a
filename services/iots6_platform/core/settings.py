"""Every setting of the platform's programs, defined once: name, type, default, range or choices, meaning.

Each program reads its own prefix (DECISIONS §15): the ingest ``INGEST_*`` (:class:`IngestSettings`), the config
server ``CONFIG_SERVER_*`` (:class:`ConfigServerSettings`), the migrations job ``MIGRATE_*``
(:class:`MigrateSettings`).  The variable of a field is the prefix plus the field's name in upper case.  Everything
else is derived from these classes: the services' configuration (``IngestConfig.from_env``, the config server's
``load``, ``iots6-migrate``), the environment the native stack and the Compose file hand to each service
(:meth:`ServiceSettings.env`), and the settings tables in the docs (``python -m iots6_platform.core.settings
--markdown ingest``; ``scripts/settings_docs.py`` writes them between markers and a test fails when they are stale).

Secrets are never values: a ``*_FILE`` field names a file (a Compose secret, a systemd credential, a mounted
Kubernetes Secret) and :func:`read_secrets` reads it.  A password inside a URL is refused.  Every error is a
:class:`ConfigError`: one sentence naming the variable and the fix.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

__all__ = [
    "ConfigError",
    "ConfigServerSettings",
    "EnvironSource",
    "IngestSettings",
    "MigrateSettings",
    "SERVICES",
    "ServiceSettings",
    "markdown_table",
    "read_secrets",
    "secret_file",
]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
MqttProtocol = Literal["5", "3.1.1"]
Edition = Literal["postgres", "timescale-apache", "timescale"]

_DB_URL_HINT = "set it to postgresql://user@host:port/dbname"


class ConfigError(Exception):
    """A missing or malformed environment variable (one sentence, names the variable)."""


# ---------------------------------------------------------------------------------------------- field helpers


def setting(
    default: Any = ...,
    description: str = "",
    *,
    shown: str | None = None,
    required: str | None = None,
    required_with: str | None = None,
    secret: bool = False,
    **constraints: Any,
) -> Any:
    """A field with what the docs and the errors need besides pydantic's own: ``shown`` (the default as the docs
    show it), ``required`` (the fix named when a required ``*_FILE`` is not set), ``required_with`` (the field
    that makes it required), ``secret`` (a ``*_FILE`` that :func:`read_secrets` reads)."""
    extra = {"shown": shown, "required": required, "required_with": required_with, "secret": secret}
    return Field(
        default, description=description, json_schema_extra={k: v for k, v in extra.items() if v}, **constraints
    )


def _extra(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


class EnvironSource(EnvSettingsSource):
    """pydantic-settings' env source over a given mapping (the process environment unless one is passed), so a
    caller (a test, the native stack) can resolve settings without touching ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        super().__init__(settings_cls)
        names = (lambda k: k) if self.case_sensitive else str.lower
        self.env_vars = {names(k): v for k, v in environ.items() if not (self.env_ignore_empty and v == "")}


class ServiceSettings(BaseSettings):
    """Base of the programs' settings: a prefix, the env source, one-sentence errors, the derived env."""

    model_config = SettingsConfigDict(env_ignore_empty=True, frozen=True, extra="forbid")
    #: The service's name, as the docs' markers and :data:`SERVICES` know it.
    service: ClassVar[str] = ""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_sources):
        # Values come from the keyword arguments only; ``from_environ`` puts the env source's values there, so
        # building a settings object never reads the process environment behind the caller's back.
        return (init_settings,)

    @classmethod
    def prefix(cls) -> str:
        return cls.model_config.get("env_prefix", "")

    @classmethod
    def variable(cls, name: str) -> str:
        """The environment variable of field ``name``."""
        if name not in cls.model_fields:
            raise KeyError(f"{cls.__name__} has no setting `{name}`")
        return cls.prefix() + name.upper()

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Every variable of this program -> its field name."""
        return {cls.variable(name): name for name in cls.model_fields}

    @classmethod
    def required_variables(cls, present: Collection[str] = ()) -> set[str]:
        """Variables an environment must set: those without a default, and those required alongside a variable
        in ``present`` (``CONFIG_SERVER_MQTT_PASSWORD_FILE`` once ``CONFIG_SERVER_MQTT_HOST`` is set)."""
        out = set()
        for name, field in cls.model_fields.items():
            extra = _extra(field)
            trigger = extra.get("required_with")
            if field.is_required() or (extra.get("required") and (not trigger or cls.variable(trigger) in present)):
                out.add(cls.variable(name))
        return out

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *, given: Collection[str] = (), **overrides: Any):
        """The settings from ``environ`` (default: the process environment; empty values count as unset), with
        ``overrides`` (field names; None or "" ignored) on top.  ``given`` names the secrets passed directly
        (``admin_token`` for ``admin_token_file``), which a required ``*_FILE`` then need not name.  Raises
        :class:`ConfigError` for the first problem in definition order."""
        values: dict[str, Any] = EnvironSource(cls, os.environ if environ is None else environ)()
        values.update({k: v for k, v in overrides.items() if v not in (None, "")})
        order = list(cls.model_fields)
        try:
            settings = cls(**values)
            errors = []
        except ValidationError as exc:
            settings, errors = None, exc.errors()
        first_error = min((order.index(e["loc"][0]) for e in errors if e["loc"]), default=len(order))
        for name in order[:first_error]:
            extra = _extra(cls.model_fields[name])
            if extra.get("secret") and extra.get("required") and not values.get(name):
                if name.removesuffix("_file") in given:
                    continue
                if not extra.get("required_with") or values.get(extra["required_with"]):
                    raise ConfigError(f"{cls.variable(name)} is not set; {extra['required']}.")
        if errors:
            raise _config_error(cls, errors, values) from None
        return settings

    @classmethod
    def env(cls, **values: Any) -> dict[str, str]:
        """The environment that sets ``values`` (field names), checked against the definition: an unknown name or
        a value out of range is an error here, where the env is built, not when the service starts."""
        # Checked as the service will read them: as text.  None leaves a setting out.
        values = {name: _text(value) for name, value in values.items() if value is not None}
        unknown = sorted(set(values) - set(cls.model_fields))
        if unknown:
            raise KeyError(f"{cls.__name__} has no setting `{unknown[0]}`")
        # Only the given values are checked: a required setting left out may come from elsewhere (the service's
        # own env file, a later overlay), which the deployment tests check.
        try:
            cls(**values)
        except ValidationError as exc:
            errors = [e for e in exc.errors() if not (e["type"] == "missing" and e["loc"][0] not in values)]
            if errors:
                raise _config_error(cls, errors, values) from None
        return {cls.variable(name): value for name, value in values.items()}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _config_error(cls: type[ServiceSettings], errors: list[Any], values: Mapping[str, Any]) -> ConfigError:
    """The first of pydantic's ``errors`` (fields in definition order) as one sentence naming the variable and the
    fix."""
    error = errors[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    field = cls.model_fields.get(name)
    if field is None:
        return ConfigError(f"{error['msg']}.")
    variable, raw = cls.variable(name), values.get(name)
    kind = error["type"]
    low, high = _bounds(field)
    if kind == "missing":
        hint = _extra(field).get("required") or "set it"
        return ConfigError(f"{variable} is not set; {hint}.")
    if kind in ("int_parsing", "int_type", "int_from_float", "float_parsing", "float_type"):
        return ConfigError(f"{variable}=`{raw}` is not an integer; set a number from {low} to {high}.")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return ConfigError(f"{variable}={raw} is out of range; set a number from {low} to {high}.")
    if kind in ("literal_error", "enum"):
        allowed = _choices(field)
        return ConfigError(f"{variable}=`{raw}` is unknown; use {', '.join(allowed[:-1])} or {allowed[-1]}.")
    if kind == "value_error":
        message = str(error["ctx"]["error"]).replace("{variable}", variable)
        return ConfigError(message.replace("{password_file}", variable.removesuffix("URL") + "PASSWORD_FILE"))
    return ConfigError(f"{variable}=`{raw}` is invalid ({error['msg']}); fix the value.")


def _bounds(field: FieldInfo) -> tuple[Any, Any]:
    low = high = None
    for item in field.metadata:
        low = getattr(item, "ge", None) if getattr(item, "ge", None) is not None else low
        high = getattr(item, "le", None) if getattr(item, "le", None) is not None else high
    return low, high


def _choices(field: FieldInfo) -> tuple[str, ...]:
    annotation = field.annotation
    args = get_args(annotation)
    literal = next((a for a in args if get_args(a)), None) if args and not isinstance(args[0], str) else annotation
    return tuple(get_args(literal))


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _no_password_in_url(value: str | None) -> str | None:
    if value is not None and urlsplit(value).password:
        raise ValueError("{variable} contains a password; move it to {password_file}.")
    return value


# ----------------------------------------------------------------------------------------------- the programs


class IngestSettings(ServiceSettings):
    """``iots6-ingest``: MQTT in, PostgreSQL out."""

    model_config = SettingsConfigDict(env_prefix="INGEST_")
    service: ClassVar[str] = "ingest"

    mqtt_host: str = setting("127.0.0.1", "broker host")
    mqtt_port: int | None = setting(None, "broker port", shown="1883 (8883 with TLS)", ge=1, le=65535)
    mqtt_username: str = setting("svc.ingest", "broker account (role ingest: read-only on `<base>/#`)")
    mqtt_password_file: str | None = setting(
        None,
        "file holding that account's password",
        secret=True,
        required="point it at the ingest account's password file",
    )
    mqtt_protocol: MqttProtocol = setting("5", "`5` (shared subscriptions) or `3.1.1` (e.g. an amqtt broker)")
    mqtt_tls_ca_file: str = setting(
        "",
        "CA certificate (PEM) the broker's certificate must chain to; setting it turns TLS on (host name verified, "
        "TLS >= 1.2)",
        shown="(none: plain TCP)",
    )
    mqtt_tls_cert_file: str = setting("", "client certificate (PEM), for a listener that requires one", shown="(none)")
    mqtt_tls_key_file: str = setting("", "that certificate's private key (PEM, unencrypted, 0600)", shown="(none)")
    client_id: str = setting("iots6-ingest-1", "stable client id: the persistent session's name")
    share_group: str = setting(
        "",
        "MQTT v5 shared-subscription group: set it to run several workers that split the stream (docs/ingest.md)",
        shown="(none: one worker)",
    )
    topic_base: str = setting("iots6", "first level of every topic")
    database_url: str = setting(..., "`postgresql://user@host:port/db`, no password", required=_DB_URL_HINT)
    database_password_file: str | None = setting(
        None, "file holding the database password", secret=True, shown="(none: libpq's)"
    )
    batch_size: int = setting(2000, "flush when this many messages are pending", ge=1, le=50_000)
    flush_ms: int = setting(50, "... or when the oldest pending message is this old (ms)", ge=1, le=60_000)
    receive_maximum: int = setting(8000, "unacknowledged messages the broker may send at once", ge=1, le=65_535)
    http_bind: str = setting("127.0.0.1", "health and metrics listener address")
    http_port: int = setting(8081, "health (`/healthz`) and Prometheus (`/metrics`) port; 0 = off", ge=0, le=65535)
    rollup_interval_s: int = setting(10, "how often written time ranges are rolled up (s)", ge=1, le=86_400)
    maintenance_interval_s: int = setting(
        600, "how often `iots6_maintain()` runs: partitions, retention (s)", ge=1, le=86_400
    )
    log_level: LogLevel = setting("INFO", "`DEBUG`, `INFO`, `WARNING` or `ERROR`")

    _level = field_validator("log_level", mode="before")(_upper)
    _url = field_validator("database_url")(_no_password_in_url)


class ConfigServerSettings(ServiceSettings):
    """``iots6-config-server``: the device configuration API (gunicorn)."""

    model_config = SettingsConfigDict(env_prefix="CONFIG_SERVER_")
    service: ClassVar[str] = "config-server"

    database_url: str = setting(..., "`postgresql://user@host:port/db`, no password", required=_DB_URL_HINT)
    database_password_file: str | None = setting(
        None, "file holding the database password", secret=True, shown="(none: libpq's)"
    )
    admin_token_file: str | None = setting(
        None,
        "0600 file holding the admin bearer token",
        secret=True,
        required="point it at the 0600 file holding the admin token",
    )
    mqtt_host: str | None = setting(None, "broker for change notices; unset: notices off", shown="(unset)")
    mqtt_port: int = setting(1883, "broker port", ge=1, le=65535)
    mqtt_username: str = setting("svc.config", "broker account (role config: `<base>/+/config`)")
    mqtt_password_file: str | None = setting(
        None,
        "file holding that account's password",
        secret=True,
        required="point it at the svc.config account's password file",
        required_with="mqtt_host",
    )
    mqtt_protocol: MqttProtocol = setting("5", "`5`, or `3.1.1` for a broker without v5 (e.g. amqtt)")
    topic_base: str = setting("iots6", "first level of every topic")
    bind: str = setting("127.0.0.1", "listen address")
    port: int = setting(8080, "listen port", ge=0, le=65535)
    workers: int = setting(2, "gunicorn worker processes", ge=1, le=32)
    log_level: LogLevel = setting("INFO", "`DEBUG`, `INFO`, `WARNING` or `ERROR`")

    _level = field_validator("log_level", mode="before")(_upper)
    _url = field_validator("database_url")(_no_password_in_url)


class MigrateSettings(ServiceSettings):
    """``iots6-migrate``: the one-shot migrations job."""

    model_config = SettingsConfigDict(env_prefix="MIGRATE_")
    service: ClassVar[str] = "migrate"

    database_url: str = setting(..., "`postgresql://user@host:port/db`, no password", required=_DB_URL_HINT)
    database_password_file: str | None = setting(
        None, "file holding that user's password", secret=True, shown="(none: libpq's)"
    )
    edition: Edition | None = setting(None, "force `postgres`, `timescale-apache` or `timescale`", shown="(detected)")

    _url = field_validator("database_url")(_no_password_in_url)


#: The programs by the name the docs' markers use.
SERVICES: dict[str, type[ServiceSettings]] = {
    cls.service: cls for cls in (IngestSettings, ConfigServerSettings, MigrateSettings)
}


# ------------------------------------------------------------------------------------------------------ secrets


def secret_file(variable: str, path: str) -> str:
    """The secret held in ``path`` (named by ``variable``), stripped; never echoed in an error."""
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{variable}=`{path}` cannot be read ({exc.strerror}); point it at the file.") from None
    if not value:
        raise ConfigError(f"{variable}=`{path}` is empty; write the secret into it.")
    return value


def read_secrets(settings: ServiceSettings, given: Mapping[str, Any] | None = None) -> dict[str, str | None]:
    """The secrets named by ``settings``' ``*_FILE`` fields, by field name without ``_file``.  ``given`` holds
    secrets passed directly (tests, ``create_app``), by the same names; a required secret neither given nor
    named is an error naming its ``*_FILE`` variable."""
    given = given or {}
    out: dict[str, str | None] = {}
    for name, field in type(settings).model_fields.items():
        extra = _extra(field)
        if not extra.get("secret"):
            continue
        key = name.removesuffix("_file")
        path = getattr(settings, name)
        if extra.get("required_with") and not getattr(settings, extra["required_with"]):
            out[key] = None  # only used alongside that setting (the config server's broker password): not read
            continue
        if given.get(key):
            out[key] = str(given[key])
        elif path:
            out[key] = secret_file(settings.variable(name), path)
        elif extra.get("required"):
            raise ConfigError(f"{settings.variable(name)} is not set; {extra['required']}.")
        else:
            out[key] = None
    return out


# ------------------------------------------------------------------------------------------------- the docs


def _shown_default(field: FieldInfo, variable) -> str:
    extra = _extra(field)
    if extra.get("shown"):
        return extra["shown"]
    if field.is_required() or (extra.get("required") and not extra.get("required_with")):
        return "required"
    if extra.get("required_with"):
        return f"required with `{variable(extra['required_with'])}`"
    if field.default_factory is not None:
        return "(computed)"
    if field.default in (None, ""):
        return "(none)"
    if isinstance(field.default, bool):
        return f"`{str(field.default).lower()}`"
    return f"`{field.default}`"


def rows(cls: type[BaseSettings], variable: Callable[[str], str] | None = None) -> list[dict[str, str]]:
    """For each field of ``cls`` in definition order: its key, variable, meaning (with the range) and default as
    the docs show them.  ``variable`` maps a field name to its variable (default: ``cls.variable``)."""
    variable = variable or cls.variable  # type: ignore[attr-defined]
    out = []
    for name, field in cls.model_fields.items():
        low, high = _bounds(field)
        meaning = field.description or ""
        if low is not None and high is not None:
            meaning += f"; {low} to {high}"
        out.append(
            {"key": name, "variable": variable(name), "meaning": meaning, "default": _shown_default(field, variable)}
        )
    return out


def markdown_table(cls: type[BaseSettings], variable: Callable[[str], str] | None = None, *, keys: bool = False) -> str:
    """The settings table of ``cls`` in Markdown (what the docs hold between their ``settings:`` markers); with
    ``keys`` a first column holds the field names (the CLI's TOML keys)."""
    head = ["key"] * keys + ["variable", "meaning", "default"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows(cls, variable):
        cells = [f"`{row['key']}`"] * keys + [f"`{row['variable']}`", row["meaning"].replace("|", "/"), row["default"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "--markdown" or argv[1] not in SERVICES:
        sys.stderr.write(f"usage: python -m iots6_platform.core.settings --markdown {{{','.join(SERVICES)}}}\n")
        return 2
    sys.stdout.write(markdown_table(SERVICES[argv[1]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
