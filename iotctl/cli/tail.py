"""`iotctl tail`: follow live traffic from the broker."""

from __future__ import annotations

import json
import sys

import typer

from iotctl.cli.common import ENV_OPTION, console, err, settings

app = typer.Typer(help="Follow live traffic from the broker.", no_args_is_help=True)


def _table(model, now=None):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from iotctl.tail import COLUMNS

    caption = f"{model.readings} reading(s), {model.errors} bad message(s)"
    if model.rejected_fields:
        caption += f", {model.rejected_fields} field(s) rejected and stored empty"
    if model.last_error:
        caption += f"; last error: {model.last_error[:120]}"
    table = Table(title=f"live readings on {model.topic_base}/# (Ctrl-C to leave)", caption=caption, box=box.SIMPLE)
    for column in COLUMNS:
        table.add_column(column, no_wrap=True, justify="right" if column not in ("device", "status", "fw") else "left")
    for row in model.rows(now):
        cells: list = list(row.cells())
        cells[1] = Text(row.status, style={"online": "green", "offline": "red"}.get(row.status, ""))
        table.add_row(*cells)
    return table


@app.command()
def sensors(
    ctx: typer.Context,
    _env: str = ENV_OPTION,
    device: str = typer.Option(None, "--device", envvar="IOTCTL_TAIL_DEVICE", help="Only this device id."),
    count: int = typer.Option(
        None,
        "--count",
        min=1,
        envvar="IOTCTL_TAIL_COUNT",
        help="Exit 0 after this many readings.",
    ),
    timeout: float = typer.Option(
        None,
        "--timeout",
        min=0.1,
        envvar="IOTCTL_TAIL_TIMEOUT",
        help="Stop after this many seconds; with --count, exit 1 if fewer arrived.",
    ),
    json_: bool = typer.Option(False, "--json", help="One JSON line per reading (contract fields) on stdout."),
) -> None:
    """Show live readings, one row per device: last values, online/offline and the age of the last reading."""
    from iotctl.environments import mqtt_endpoint
    from iotctl.tail import ERROR, READING, TailModel, follow, plain_line, reading_json

    cfg = settings(ctx)
    model = TailModel(cfg.topic_base, device)
    endpoint = mqtt_endpoint(cfg)
    errors = err()

    def emit(update) -> None:
        if update.kind == READING:
            if json_:
                sys.stdout.write(json.dumps(reading_json(update.reading), ensure_ascii=False) + "\n")
            else:
                sys.stdout.write(plain_line(update.reading) + "\n")
            sys.stdout.flush()
            for field in update.rejected:
                errors.print(
                    f"{update.device_id}: `{field.field}` rejected ({field.reason}: {field.detail}); stored empty"
                )
        elif update.kind == ERROR:
            errors.print(f"bad message: {update.error}")

    live_view = not json_ and sys.stdout.isatty()
    try:
        if not live_view:
            follow(endpoint, model, emit, count=count, timeout=timeout)
            return
        from rich.live import Live

        with Live(_table(model), console=console(live=True), refresh_per_second=4, auto_refresh=False) as live:
            follow(
                endpoint,
                model,
                lambda _update: None,
                count=count,
                timeout=timeout,
                on_tick=lambda: live.update(_table(model), refresh=True),
            )
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a live view ends: exit 0 (the Live context has restored the terminal)
    finally:
        if model.errors and not json_:
            errors.print(f"{model.errors} bad message(s) seen")
