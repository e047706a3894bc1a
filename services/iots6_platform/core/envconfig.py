"""Environment-variable parsing shared by the services: one-sentence errors that name the variable and the fix."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MQTT_PROTOCOLS = ("5", "3.1.1")


class ConfigError(Exception):
    """A missing or malformed environment variable (one sentence, names the variable)."""


def secret_file(variable: str, path: str) -> str:
    """The secret held in ``path`` (named by ``variable``), stripped; never echoed in an error."""
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{variable}=`{path}` cannot be read ({exc.strerror}); point it at the file.") from None
    if not value:
        raise ConfigError(f"{variable}=`{path}` is empty; write the secret into it.")
    return value


def integer(variable: str, raw: object, low: int, high: int) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        raise ConfigError(f"{variable}=`{raw}` is not an integer; set a number from {low} to {high}.") from None
    if not low <= value <= high:
        raise ConfigError(f"{variable}={value} is out of range; set a number from {low} to {high}.")
    return value


def choice(variable: str, raw: str, allowed: tuple[str, ...]) -> str:
    if raw not in allowed:
        raise ConfigError(f"{variable}=`{raw}` is unknown; use {', '.join(allowed[:-1])} or {allowed[-1]}.")
    return raw


def database_url(variable: str, url: str | None) -> str:
    """A postgresql:// URL without a password (passwords travel in files, never in a URL or a process list)."""
    if not url:
        raise ConfigError(f"{variable} is not set; set it to postgresql://user@host:port/dbname.")
    if urlsplit(url).password:
        raise ConfigError(f"{variable} contains a password; move it to {variable.removesuffix('URL')}PASSWORD_FILE.")
    return url
