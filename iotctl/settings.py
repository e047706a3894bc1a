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


#: ``Settings.sources`` value of a key nobody set.
DEFAULT = "default"


@dataclass(frozen=True)
class Settings:
    """Every knob a script may set. Field docs are shown by ``iotctl settings``."""

    env: str = field(
        default="local",
        metadata={"doc": "environment to talk to: local, docker, or one added with `iotctl env add`"},
    )
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
    mqtt_tls_port: int = field(
        default=0,
        metadata={"doc": "native stack: also listen with TLS on this port (CA in <state_dir>/pki); 0: no TLS"},
    )
    #: Where each value came from: ``default``, a TOML path, an env var name or a ``--flag`` (not a setting).
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False, metadata={"internal": True})

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
    known = {f.name: f for f in fields(Settings) if not f.metadata.get("internal")}
    unknown = sorted(set(file_values) - set(known))
    if unknown:
        raise InvalidInput(f"Unknown key `{unknown[0]}` in `{toml_path}`; known keys: {', '.join(sorted(known))}.")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, f in known.items():
        sources[name] = DEFAULT
        if name in file_values:
            values[name] = _coerce(name, f.type, file_values[name], str(toml_path))
            sources[name] = str(toml_path)
        env_name = ENV_PREFIX + name.upper()
        if env.get(env_name):
            values[name] = _coerce(name, f.type, env[env_name], env_name)
            sources[name] = env_name
        if name in flags:
            flag = f"--{name.replace('_', '-')}"
            values[name] = _coerce(name, f.type, flags[name], flag)
            sources[name] = flag
    settings = Settings(**values, sources=sources)
    if settings.engine not in ("auto", "system", "embedded"):
        raise InvalidInput(f"`engine` must be auto, system or embedded, got {settings.engine!r}.")
    return settings


def describe(settings: Settings) -> list[dict[str, Any]]:
    """Rows for ``iotctl settings``: key, value, where it came from, env var, doc."""
    return [
        {
            "key": f.name,
            "value": None if getattr(settings, f.name) is None else str(getattr(settings, f.name)),
            "source": settings.sources.get(f.name, DEFAULT),
            "env": ENV_PREFIX + f.name.upper(),
            "doc": f.metadata.get("doc", ""),
        }
        for f in dataclasses.fields(settings)
        if not f.metadata.get("internal")
    ]
