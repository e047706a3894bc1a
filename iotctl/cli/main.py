"""The `iotctl` command: root options, command groups, and the one place errors become exit codes."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import typer
from typer.core import TyperGroup

from iotctl import __version__
from iotctl.cli import config, db, deploy, device, env, stack, tail
from iotctl.cli.common import ENV_OPTION


@contextmanager
def _plain_usage_errors():
    """Off a terminal, a usage error (exit 2) is click's plain lines (`Error: <sentence>`) instead of Typer's rich
    panel, which is hard-wrapped to `COLUMNS` or 80 columns whatever the stream. On a terminal Typer shows its panel."""
    from iotctl.cli.common import is_terminal

    try:
        yield
    except typer.TyperException as exc:  # the base of Typer's (vendored) click exceptions
        # NoArgsIsHelpError is how a bare group shows its help: Typer prints that itself.
        if is_terminal(sys.stderr) or type(exc).__name__ == "NoArgsIsHelpError":
            raise
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            typer.echo(f"Error: {exc.format_message()}", err=True)
        raise typer.Exit(exc.exit_code) from None


class IotctlGroup(TyperGroup):
    """The root group: the one place library errors become one line on stderr and an exit code."""

    def make_context(self, *args, **kwargs):
        with _plain_usage_errors():  # the root's own options
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        from iotctl.errors import IotctlError, exit_code_for

        try:
            with _plain_usage_errors():  # every subcommand's arguments and options
                return super().invoke(ctx)
        except IotctlError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exit_code_for(exc)) from None


app = typer.Typer(
    name="iotctl",
    cls=IotctlGroup,
    help="Run a fleet of Raspberry Pi Pico W sensor nodes: broker, database, ingest, devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(db.app, name="db")
app.add_typer(device.app, name="device")
app.add_typer(stack.app, name="stack")
app.add_typer(tail.app, name="tail")
app.add_typer(config.app, name="config")
app.add_typer(env.app, name="env")
app.add_typer(deploy.app, name="deploy")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"iotctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path = typer.Option(
        None,
        "--config",
        help="Settings file (TOML). [env: IOTCTL_CONFIG; default: ./iotctl.toml]",
        show_default=False,
    ),
    state_dir: Path = typer.Option(
        None,
        "--state-dir",
        help="Native stack state, logs and credentials. [env: IOTCTL_STATE_DIR; default: ~/.local/state/iotctl]",
        show_default=False,
    ),
    env: str = typer.Option(
        None,
        "--env",
        help="Environment to talk to: local, docker or one added with `iotctl env add` (also accepted after "
        "the command). [env: IOTCTL_ENV; default: local]",
        show_default=False,
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Settings: defaults < iotctl.toml < IOTCTL_* env vars < flags (`iotctl settings` lists them)."""
    ctx.obj = {"flags": {"config": config, "state_dir": state_dir, "env": env}}


@app.command("settings")
def show_settings(
    ctx: typer.Context,
    _env: str = ENV_OPTION,
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List every setting with its value in effect, where it came from, and its env var.

    With a registered environment active (--env), the broker, database and config-server values are the
    environment's own.
    """
    from rich.table import Table

    from iotctl.cli.common import emit_json, info, out, settings
    from iotctl.environments import active, describe_settings
    from iotctl.settings import describe

    cfg = settings(ctx)
    rows = describe_settings(cfg, describe(cfg))
    if json_:
        emit_json(rows)
        return
    env = active(cfg)
    info(f"environment: {env.name} ({env.kind}; {env.file or 'built in'})")
    table = Table()
    for column in ("key", "value", "source", "env", "doc"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["key"], row["value"] or "-", row["source"], row["env"], row["doc"])
    out().print(table)


def run() -> None:
    """Console entry point (errors are mapped in :class:`IotctlGroup`)."""
    try:
        app()  # standalone: Typer itself handles usage errors (exit 2) and --help
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
