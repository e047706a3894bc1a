"""Settings for the CLI, resolved in one place.

Precedence, lowest first: built-in defaults < ``iotctl.toml`` < ``IOTCTL_*`` environment variables < command-line
flags.  The TOML file is ``./iotctl.toml`` unless ``--config`` or ``IOTCTL_CONFIG`` names another; a named file that
does not exist is an error, the implicit one is optional.  Each key ``foo_bar`` has the env var ``IOTCTL_FOO_BAR``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from iotctl.errors import InvalidInput

ENV_PREFIX = "IOTCTL_"


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "iotctl"


@dataclass(frozen=True)
class Settings:
    """Every knob a script may set. Field docs are shown by ``iotctl settings``."""

    state_dir: Path = field(default_factory=_default_state_dir, metadata={"doc": "native stack state and credentials"})
    topic_base: str = field(default="iots6", metadata={"doc": "first level of every MQTT topic"})
    mqtt_host: str = field(default="127.0.0.1", metadata={"doc": "broker host"})
    mqtt_port: int = field(default=18830, metadata={"doc": "broker port (the native stack listens here)"})
    mqtt_username: str | None = field(default=None, metadata={"doc": "operator account; default: the stack's"})
    mqtt_password_file: Path | None = field(default=None, metadata={"doc": "file holding that account's password"})
    pg_port: int = field(default=15432, metadata={"doc": "PostgreSQL port of the native stack"})
    database_url: str | None = field(
        default=None, metadata={"doc": "postgresql:// URL without password; default: the stack's database"}
    )
    database_password_file: Path | None = field(default=None, metadata={"doc": "file holding the DB password"})
    ingest_health_port: int = field(default=18081, metadata={"doc": "ingest health/metrics port in the stack"})
    config_port: int = field(default=18080, metadata={"doc": "config server port in the stack"})
    config_url: str | None = field(
        default=None,
        metadata={"doc": "config server base URL; default: the stack's http://127.0.0.1:<config_port>"},
    )
    config_admin_token_file: Path | None = field(
        default=None, metadata={"doc": "file holding the config server admin token; default: the stack's"}
    )
    docker: bool = field(
        default=False,
        metadata={"doc": "use the Docker Compose stack in <state_dir>/docker (credentials, broker accounts)"},
    )
    engine: str = field(
        default="auto",
        metadata={"doc": "native stack engines: auto, system (mosquitto/postgres) or embedded"},
    )

    def env_name(self, key: str) -> str:
        return ENV_PREFIX + key.upper()


def _coerce(name: str, type_: Any, raw: Any, source: str) -> Any:
    if raw is None:
        return None
    text = str(type_)
    if text == "bool":
        value = str(raw).strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off", ""):
            return False
        raise InvalidInput(f"`{name}` from {source} must be true or false, got {raw!r}; fix the value there.")
    try:
        if "int" in text:
            return int(raw)
        if "Path" in text:
            return Path(os.path.expanduser(str(raw)))
        return str(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"`{name}` from {source} must be {text}, got {raw!r}; fix the value there.") from None


def _read_toml(path: Path, explicit: bool) -> dict[str, Any]:
    if not path.exists():
        if explicit:
            raise InvalidInput(f"Config file `{path}` does not exist; create it or drop --config/IOTCTL_CONFIG.")
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"Config file `{path}` is not valid TOML ({exc}); fix or remove it.") from None
    return data


def load_settings(flags: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Resolve settings: defaults < TOML < env < flags (flags whose value is None are ignored)."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if environ is None else environ
    config_flag = flags.pop("config", None) or env.get(ENV_PREFIX + "CONFIG")
    toml_path = Path(config_flag) if config_flag else Path("iotctl.toml")
    file_values = _read_toml(toml_path, explicit=bool(config_flag))
    known = {f.name: f for f in fields(Settings)}
    unknown = sorted(set(file_values) - set(known))
    if unknown:
        raise InvalidInput(f"Unknown key `{unknown[0]}` in `{toml_path}`; known keys: {', '.join(sorted(known))}.")
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name in file_values:
            values[name] = _coerce(name, f.type, file_values[name], str(toml_path))
        env_name = ENV_PREFIX + name.upper()
        if env.get(env_name):
            values[name] = _coerce(name, f.type, env[env_name], env_name)
        if name in flags:
            values[name] = _coerce(name, f.type, flags[name], f"--{name.replace('_', '-')}")
    settings = Settings(**values)
    if settings.engine not in ("auto", "system", "embedded"):
        raise InvalidInput(f"`engine` must be auto, system or embedded, got {settings.engine!r}.")
    return settings


def describe(settings: Settings) -> list[dict[str, Any]]:
    """Rows for ``iotctl settings``: key, value, env var, doc."""
    return [
        {
            "key": f.name,
            "value": None if getattr(settings, f.name) is None else str(getattr(settings, f.name)),
            "env": ENV_PREFIX + f.name.upper(),
            "doc": f.metadata.get("doc", ""),
        }
        for f in dataclasses.fields(settings)
    ]
