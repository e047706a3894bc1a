"""Shared CLI plumbing: settings from the context, output helpers (data to stdout, messages to stderr)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import typer
from rich.console import Console

from iotctl.settings import Settings, load_settings


def settings(ctx: typer.Context) -> Settings:
    """Resolve settings once per invocation from the root callback's flags."""
    root = ctx.find_root()
    if not isinstance(root.obj, dict):
        root.obj = {}
    if "settings" not in root.obj:
        root.obj["settings"] = load_settings(root.obj.get("flags", {}))
    return root.obj["settings"]


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()


def out() -> Console:
    return Console(no_color=_no_color(), highlight=False, soft_wrap=True)


def err() -> Console:
    return Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")) or not sys.stderr.isatty(), highlight=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    err().print(message)


JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON to stdout.")


def _remember_env(ctx: typer.Context, value: str | None) -> str | None:
    """``--env`` on a command: becomes the ``env`` flag before settings are first resolved."""
    if value is not None:
        root = ctx.find_root()
        if not isinstance(root.obj, dict):
            root.obj = {}
        root.obj.setdefault("flags", {})["env"] = value
        root.obj.pop("settings", None)
    return value


#: On every command that talks to a platform; the function ignores the value (it is a settings flag).
ENV_OPTION = typer.Option(
    None,
    "--env",
    callback=_remember_env,
    is_eager=True,
    help="Environment to talk to: local, docker or one added with `iotctl env add`. [env: IOTCTL_ENV; default: local]",
    show_default=False,
)
