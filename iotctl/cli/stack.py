"""`iotctl stack`: the local stack, native processes or Docker Compose (``iotctl.stack.local_stack``); one thin
function per verb over the ``iotctl.stack.base.Stack`` interface."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import typer

from iotctl.cli.common import JSON_OPTION, emit_json, err, out, settings

DOCKER_OPTION = typer.Option(
    False,
    "--docker",
    help="Use the Docker Compose stack in <state-dir>/docker instead of native processes. [env: IOTCTL_DOCKER]",
)

app = typer.Typer(
    help="The local stack: broker, database, ingest and config server as processes on 127.0.0.1 (or --docker).",
    no_args_is_help=True,
)


@contextmanager
def _progress():
    """A live status line on stderr when it is a TTY, plain lines otherwise; yields the callback."""
    console = err()
    if not console.is_terminal:
        yield lambda message: console.print(f"stack: {message}")
        return
    with console.status("working…") as status:

        def report(message: str) -> None:
            console.print(f"• {message}")
            status.update(message)

        yield report


def _stack(ctx: typer.Context, docker: bool, progress=None):
    """The native or the Docker stack (``iotctl.stack.local_stack``), as --docker / IOTCTL_DOCKER say."""
    from iotctl.stack import local_stack

    return local_stack(settings(ctx), progress, docker=docker or None)


def _render(report) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # The heading is a line of its own, not the table's title: a title is wrapped to the table's width.
    table = Table(box=box.SIMPLE)
    table.add_column("component", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("pid", no_wrap=True)
    table.add_column("endpoint", no_wrap=True)
    styles = {"running": "green", "stopped": "red", "absent": "dim", "done": "dim"}
    notes = []
    for c in report.components:
        table.add_row(c.name, Text(c.state, style=styles[c.state]), str(c.pid or "-"), c.endpoint or "-")
        if c.detail:
            notes.append(f"{c.name}: {c.detail}")
    console = out()
    console.print(f"{report.kind} stack in {report.state_dir} (engine: {report.engine or '-'})")
    console.print(table)
    for note in notes:
        console.print(note)
    console.print(f"credentials: {report.credentials['dir']}")
    grafana = report.endpoints.get("grafana")
    if grafana:
        console.print(f"grafana: {grafana['note']}; dashboards in {grafana['dashboards']}")


@app.command()
def up(
    ctx: typer.Context,
    engine: str = typer.Option(
        None,
        "--engine",
        help="system: the installed mosquitto and PostgreSQL; embedded: the pip-installed amqtt broker (MQTT "
        "3.1.1) and PostgreSQL from pgserver (pip install 'iotctl[embedded]'); auto: system when installed, "
        "else embedded. [env: IOTCTL_ENGINE; default: auto]",
        show_default=False,
    ),
    docker: bool = DOCKER_OPTION,
    json_: bool = JSON_OPTION,
) -> None:
    """Start whatever is down: broker, database (migrated), ingest, config server. Safe to re-run."""
    if engine:  # before settings are first resolved (they are cached per invocation)
        ctx.find_root().obj.setdefault("flags", {})["engine"] = engine
    with _progress() as progress:
        report = _stack(ctx, docker, progress).up()
    if json_:
        emit_json(report.to_dict())
        return
    _render(report)
    err().print(f"started: {', '.join(report.started) or 'nothing (all running)'}")


@app.command()
def down(
    ctx: typer.Context,
    reset: bool = typer.Option(False, "--reset", help="Also delete all stack data and credentials after stopping."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before --reset deletes data."),
    docker: bool = DOCKER_OPTION,
    json_: bool = JSON_OPTION,
) -> None:
    """Stop config server, ingest (flushes on SIGTERM), PostgreSQL, broker; data is kept unless --reset."""
    from iotctl.stack.base import confirm_needed

    stack = _stack(ctx, docker)
    if confirm_needed(reset, yes, sys.stdin.isatty() and sys.stderr.isatty()):
        typer.confirm(stack.reset_question, abort=True, err=True)
    with _progress() as progress:
        stack.progress = progress
        report = stack.down(reset=reset)
    if json_:
        emit_json(report.to_dict())
        return
    err().print(
        f"stopped: {', '.join(report.stopped) or 'nothing (all stopped)'}"
        + ("; data deleted" if report.wiped else "; data kept"),
    )


@app.command()
def status(
    ctx: typer.Context,
    check: bool = typer.Option(False, "--check", help="Exit 4 if a component is not running."),
    docker: bool = DOCKER_OPTION,
    json_: bool = JSON_OPTION,
) -> None:
    """Show each component's state and pid, the endpoints and where the credentials are."""
    stack = _stack(ctx, docker)
    report = stack.status()
    if json_:
        emit_json(report.to_dict())
    else:
        _render(report)
    if check:
        stack.check(report)


@app.command()
def logs(
    ctx: typer.Context,
    component: str = typer.Argument(
        None, help="mosquitto, postgres, ingest or config-server (native); a Compose service with --docker."
    ),
    lines: int = typer.Option(200, "--lines", "-n", help="How many lines from the end."),
    docker: bool = DOCKER_OPTION,
) -> None:
    """Print the end of a component's log (all components when none is named)."""
    sys.stdout.write(_stack(ctx, docker).logs(component, lines))
