"""The native stack's state directory as files: its directories, generated secrets, ``stack.json`` and the wipe.

Paths come from ``iotctl.stack.layout.StackLayout``.  Secrets are generated once and kept in 0600 files; the
directories holding anything private are 0700.  ``wipe`` removes only what the stack created.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iotctl.broker.accounts import SERVICE_ROLES
from iotctl.secretfiles import generate_password, read_secret, write_secret
from iotctl.stack.base import Progress
from iotctl.stack.layout import StackLayout

#: Broker service accounts: role -> secret file name (``layout.secret(name)``).
SERVICE_SECRETS = {role: role for role in SERVICE_ROLES}
#: Secret files generated once per state dir; ``mqtt-admin`` is the broker's dynamic-security admin
#: (provisioning), used by the system engine only.
SECRET_NAMES = (*SERVICE_SECRETS.values(), "mqtt-admin", "db", "admin-token")


def make_dirs(layout: StackLayout) -> None:
    layout.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.geteuid() == 0 and layout.postgres_dir.parent == layout.state_dir:
        # As root PostgreSQL runs as `postgres`, who must traverse (not list) the state dir to reach its
        # cluster: 0700 becomes 0711. Every directory below that holds anything private stays 0700.
        mode = stat.S_IMODE(layout.state_dir.stat().st_mode)
        os.chmod(layout.state_dir, mode | 0o011)
    for directory in (layout.secrets_dir, layout.devices_dir, layout.logs_dir, layout.run_dir):
        directory.mkdir(exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)


def ensure_secrets(layout: StackLayout, progress: Progress) -> dict[str, str]:
    """Every secret of ``SECRET_NAMES``, generated (0600) when missing."""
    values = {}
    for name in SECRET_NAMES:
        path = layout.secret(name)
        if not path.exists():
            write_secret(path, generate_password() + "\n")
            progress(f"generated credentials `{path}`")
        values[name] = read_secret(path, f"`{name}` secret")
    return values


def service_passwords(secrets: dict[str, str]) -> dict[str, str]:
    """Role -> password of its broker service account."""
    return {role: secrets[name] for role, name in SERVICE_SECRETS.items()}


def recorded(layout: StackLayout) -> dict[str, Any]:
    """The last ``stack.json`` (empty when the stack never came up or the file is unreadable)."""
    try:
        return json.loads(layout.stack_file.read_text())
    except (OSError, ValueError):
        return {}


def write_stack_file(layout: StackLayout, engine: str, report: dict[str, Any]) -> None:
    """``stack.json`` (0600): the report without this call's changes, the engine and when."""
    data = dict(report)
    data["engine"] = engine
    for key in ("started", "stopped", "wiped"):
        data.pop(key, None)
    data["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_secret(layout.stack_file, json.dumps(data, indent=2, sort_keys=True) + "\n")


def wipe(layout: StackLayout, progress: Progress) -> list[str]:
    """Remove what the stack created (not the state dir's unrelated files); the cluster too if outside."""
    wiped = []
    postgres_dir = layout.postgres_dir
    outside = postgres_dir.parent != layout.state_dir
    if outside and postgres_dir.exists():
        # /var/lib/iotctl/<hash>/postgres: the <hash> directory is ours alone.
        target = postgres_dir.parent if postgres_dir.parent.parent == Path("/var/lib/iotctl") else postgres_dir
        shutil.rmtree(target)
        wiped.append(str(target))
    for path in (
        layout.stack_file,
        layout.secrets_dir,
        layout.devices_dir,
        layout.mosquitto_dir,
        layout.state_dir / "postgres",
        layout.logs_dir,
        layout.run_dir,
    ):
        if path.is_dir():
            shutil.rmtree(path)
            wiped.append(str(path))
        elif path.exists():
            path.unlink()
            wiped.append(str(path))
    try:
        layout.state_dir.rmdir()  # only when empty: a state dir that also holds other files keeps them
        wiped.append(str(layout.state_dir))
    except OSError:
        pass
    for path in wiped:
        progress(f"removed `{path}`")
    return wiped
