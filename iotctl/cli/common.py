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
