"""Shared CLI plumbing: settings from the context, output helpers (data to stdout, messages to stderr)."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

import typer
from rich.console import Console

if TYPE_CHECKING:  # iotctl.settings imports pydantic: loaded on first use, so `iotctl --help` stays fast
    from iotctl.settings import Settings


def settings(ctx: typer.Context) -> Settings:
    """Resolve settings once per invocation from the root callback's flags."""
    root = ctx.find_root()
    if not isinstance(root.obj, dict):
        root.obj = {}
    if "settings" not in root.obj:
        from iotctl.settings import load_settings

        root.obj["settings"] = load_settings(root.obj.get("flags", {}))
    return root.obj["settings"]


#: The width of a Console that writes to a pipe or a file. Rich would otherwise take `COLUMNS` or 80 and hard-wrap
#: messages and fold or drop table cells at it; this is wide enough that nothing is ever wrapped, so a message is one
#: line and a table takes its natural width. (Nothing we print fills the width: no rules, panels or expanded tables.)
UNWRAPPED_WIDTH = 1_000_000


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a closed or replaced stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def console(stderr: bool = False, live: bool = False) -> Console:
    """The one place the CLI builds a rich Console (stdout by default, stderr for messages).

    On a terminal: colour unless NO_COLOR is set, tables fitted to its width (`COLUMNS` overrides it), messages
    left to the terminal to wrap (soft wrap). Anywhere else (a pipe, a file, CliRunner): no escape codes at all and
    no width, so nothing is hard-wrapped, folded or cut, whatever `COLUMNS` says and however long a path is.
    Markup and emoji codes are off: text is printed as given (a path may contain `[x]` or `:x:`); styles come from
    rich `Text` objects. ``live``: for a rich `Live` view, which redraws by counting its lines, so rich must wrap
    them to the terminal's width itself (only ever used on a terminal).
    """
    terminal = is_terminal(sys.stderr if stderr else sys.stdout)
    return Console(
        stderr=stderr,
        force_terminal=terminal,  # our own test, not FORCE_COLOR/TTY_COMPATIBLE: colour and width go together
        no_color=bool(os.environ.get("NO_COLOR")) or not terminal,
        width=None if terminal else UNWRAPPED_WIDTH,
        soft_wrap=not live,
        markup=False,
        emoji=False,
        highlight=False,
    )


def out() -> Console:
    """Data: stdout."""
    return console()


def err() -> Console:
    """Messages and progress: stderr."""
    return console(stderr=True)


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
