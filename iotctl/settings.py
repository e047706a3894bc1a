"""Settings for the CLI, resolved in one place.

Precedence, lowest first: built-in defaults < ``iotctl.toml`` < ``IOTCTL_*`` environment variables < command-line
flags.  The TOML file is ``./iotctl.toml`` unless ``--config`` or ``IOTCTL_CONFIG`` names another; a named file that
does not exist is an error, the implicit one is optional.  Each key ``foo_bar`` has the env var ``IOTCTL_FOO_BAR``.
Where each value came from is kept in ``Settings.sources`` (``iotctl settings`` shows it).

``env`` picks the platform the commands talk to (``iotctl.environments``): ``local`` (the default: the native
stack, or the Docker stack when ``docker`` is set), ``docker``, or an environment registered under
``<state_dir>/environments``.  The broker, database and config-server settings below describe the built-in
environments only; a registered environment carries its own.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PrivateAttr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, TomlConfigSettingsSource

from iotctl.errors import InvalidInput

ENV_PREFIX = "IOTCTL_"


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "iotctl"


#: ``Settings.sources`` value of a key nobody set.
DEFAULT = "default"

#: A path as typed: ``~`` expanded.
UserPath = Annotated[Path, AfterValidator(lambda p: Path(os.path.expanduser(str(p))))]


class Settings(BaseSettings):
    """Every knob a script may set, typed; the descriptions are shown by ``iotctl settings`` and docs/cli.md.

    Building one directly (``Settings(state_dir=...)``) reads nothing from the environment; :func:`load_settings`
    resolves the layers."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid")

    env: str = Field("local", description="environment to talk to: local, docker, or one added with `iotctl env add`")
    state_dir: UserPath = Field(
        default_factory=_default_state_dir,
        description="native stack state and credentials, device files, environments",
        json_schema_extra={"shown": "`$XDG_STATE_HOME/iotctl` or `~/.local/state/iotctl`"},
    )
    topic_base: str = Field("iots6", description="first level of every MQTT topic")
    mqtt_host: str = Field("127.0.0.1", description="broker host")
    mqtt_port: int = Field(18830, description="broker port (the native stack listens here)")
    mqtt_username: str | None = Field(None, description="operator account; default: the stack's")
    mqtt_password_file: UserPath | None = Field(None, description="file holding that account's password")
    pg_port: int = Field(15432, description="PostgreSQL port of the native stack")
    database_url: str | None = Field(
        None, description="postgresql:// URL without password; default: the stack's database"
    )
    database_password_file: UserPath | None = Field(None, description="file holding the DB password")
    ingest_health_port: int = Field(18081, description="ingest health/metrics port in the stack")
    config_port: int = Field(18080, description="config server port in the stack")
    config_url: str | None = Field(
        None, description="config server base URL; default: the stack's `http://127.0.0.1:<config_port>`"
    )
    config_admin_token_file: UserPath | None = Field(
        None, description="file holding the config server admin token; default: the stack's"
    )
    docker: bool = Field(
        False, description="use the Docker Compose stack in `<state_dir>/docker` (credentials, broker accounts)"
    )
    engine: Literal["auto", "system", "embedded"] = Field(
        "auto", description="native stack engines: auto, system (mosquitto/postgres) or embedded"
    )
    mqtt_tls_port: int = Field(
        0, description="native stack: also listen with TLS on this port (CA in `<state_dir>/pki`); 0: no TLS"
    )

    #: Where each value came from: ``default``, a TOML path, an env var name or a ``--flag`` (not a setting).
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_sources):
        # Keyword arguments only: load_settings layers the file, the environment and the flags itself, so it can
        # say where each value came from.
        return (init_settings,)

    @property
    def sources(self) -> dict[str, str]:
        return self._sources

    def env_name(self, key: str) -> str:
        return ENV_PREFIX + key.upper()


def _read_toml(path: Path, explicit: bool) -> dict[str, Any]:
    if not path.exists():
        if explicit:
            raise InvalidInput(f"Config file `{path}` does not exist; create it or drop --config/IOTCTL_CONFIG.")
        return {}
    try:
        return TomlConfigSettingsSource(Settings, toml_file=path).toml_data
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"Config file `{path}` is not valid TOML ({exc}); fix or remove it.") from None


def _environ_values(env: dict[str, str] | os._Environ) -> dict[str, Any]:
    from iots6_platform.core.settings import EnvironSource

    return EnvironSource(Settings, env)()


def _invalid(errors: list[Any], values: dict[str, Any], sources: dict[str, str]) -> InvalidInput:
    """pydantic's first error as one sentence naming the key, where its value came from and the fix."""
    error = errors[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    source, raw = sources.get(name, DEFAULT), values.get(name)
    if error["type"] == "literal_error":
        return InvalidInput(
            f"`{name}` from {source} must be {error['ctx']['expected']}, got {raw!r}; fix the value there."
        )
    if error["type"].startswith("bool"):
        return InvalidInput(f"`{name}` from {source} must be true or false, got {raw!r}; fix the value there.")
    kind = {"int": "an integer", "path": "a path", "string": "text"}.get(error["type"].split("_")[0], "valid")
    return InvalidInput(f"`{name}` from {source} must be {kind}, got {raw!r}; fix the value there.")


def load_settings(flags: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Resolve settings: defaults < TOML < env < flags (flags whose value is None are ignored)."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if environ is None else environ
    config_flag = flags.pop("config", None) or env.get(ENV_PREFIX + "CONFIG")
    toml_path = Path(config_flag) if config_flag else Path("iotctl.toml")
    file_values = _read_toml(toml_path, explicit=bool(config_flag))
    known = list(Settings.model_fields)
    unknown = sorted(set(file_values) - set(known))
    if unknown:
        raise InvalidInput(f"Unknown key `{unknown[0]}` in `{toml_path}`; known keys: {', '.join(sorted(known))}.")
    layers = (
        (file_values, lambda name: str(toml_path)),
        (_environ_values(env), lambda name: ENV_PREFIX + name.upper()),
        ({k: v for k, v in flags.items() if k in known}, lambda name: f"--{name.replace('_', '-')}"),
    )
    values: dict[str, Any] = {}
    sources = dict.fromkeys(known, DEFAULT)
    for layer, source in layers:
        for name, value in layer.items():
            values[name], sources[name] = value, source(name)
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise _invalid(exc.errors(), values, sources) from None
    settings._sources.update(sources)
    return settings


def markdown_table() -> str:
    """docs/cli.md's settings table (``scripts/settings_docs.py`` writes it)."""
    from iots6_platform.core.settings import markdown_table as table

    return table(Settings, lambda name: ENV_PREFIX + name.upper(), keys=True)


def describe(settings: Settings) -> list[dict[str, Any]]:
    """Rows for ``iotctl settings``: key, value, where it came from, env var, doc."""
    return [
        {
            "key": name,
            "value": None if getattr(settings, name) is None else str(getattr(settings, name)),
            "source": settings.sources.get(name, DEFAULT),
            "env": ENV_PREFIX + name.upper(),
            "doc": field.description or "",
        }
        for name, field in Settings.model_fields.items()
    ]
