"""Writing and reading secrets: files are created 0600 before any byte is written, never world-readable."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from iotctl.errors import InvalidInput, NotFound


def generate_password(nbytes: int = 24) -> str:
    """A URL-safe random password (192 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def write_secret(path: Path, text: str) -> Path:
    """Atomically write ``text`` to ``path`` with mode 0600 (the directory is created 0700 if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def read_secret(path: Path, what: str) -> str:
    """Read a one-line secret file; ``what`` names it in the error."""
    path = Path(path)
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        raise NotFound(f"{what} file `{path}` does not exist; create it or point the setting elsewhere.") from None
    except PermissionError:
        raise InvalidInput(f"{what} file `{path}` is not readable; fix its permissions.") from None
    if not value:
        raise InvalidInput(f"{what} file `{path}` is empty; write the secret into it.")
    return value
