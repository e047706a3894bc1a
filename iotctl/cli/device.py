"""`iotctl device`: identities of devices (provision, list, retire)."""

from __future__ import annotations

from pathlib import Path

import typer

from iotctl.cli.common import JSON_OPTION, emit_json, info, out, settings

app = typer.Typer(help="Devices: provision identities (MQTT account, ACL, config token), list, retire.",
                  no_args_is_help=True)


@app.command()
def provision(
    ctx: typer.Context,
    device_ids: list[str] = typer.Argument(..., help="One or more device ids ([A-Za-z0-9_-]{1,64})."),
    rotate: bool = typer.Option(False, "--rotate", help="Issue new credentials for an existing device."),
    location: str = typer.Option(None, "--location", help="Label `location` (site) for dashboards."),
    json_: bool = JSON_OPTION,
) -> None:
    """Create each device's MQTT account (publish only under its own topics), registry row and config token.

    Credentials are written to <state-dir>/devices/<id>.json (mode 0600) and never printed.
    """
    from iotctl.devices import provision as do_provision

    cfg = settings(ctx)
    results = []
    for device_id in device_ids:
        creds, path = do_provision(cfg, device_id, rotate=rotate,
                                   labels={"location": location} if location else None)
        results.append({**creds.public(), "credentials_file": str(path)})
        if not json_:
            info(f"provisioned `{device_id}`; credentials in {path} (mode 0600)")
    if json_:
        emit_json(results if len(results) > 1 else results[0])


@app.command("fleet")
def fleet(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
    """List the registered fleet: last seen, status, firmware, RSSI, location, broker account."""
    from rich.table import Table

    from iotctl.devices import list_devices

    rows = list_devices(settings(ctx))
    if json_:
        emit_json(rows)
        return
    table = Table()
    for column in ("device", "status", "last seen", "fw", "rssi", "location", "broker account"):
        table.add_column(column)
    for r in rows:
        state = "retired" if r["retired_at"] else (r["status"] or "-")
        table.add_row(r["device_id"], state, str(r["last_seen"] or "-"), r["fw"] or "-", str(r["rssi"] or "-"),
                      (r["labels"] or {}).get("location", "-"), "yes" if r["broker_account"] else "no")
    out().print(table)


@app.command()
def retire(ctx: typer.Context, device_id: str = typer.Argument(..., help="The device to retire.")) -> None:
    """Revoke a device's MQTT account and config token; its readings stay."""
    from iotctl.devices import retire as do_retire

    do_retire(settings(ctx), device_id)
    info(f"retired `{device_id}`: broker account and config token revoked; readings kept")


@app.command()
def simulate(
    ctx: typer.Context,
    count: int = typer.Option(..., "--count", envvar="IOTCTL_SIM_COUNT",
                              help="Number of virtual nodes <prefix>-0001 ..."),
    rate: float = typer.Option(1.0, "--rate", envvar="IOTCTL_SIM_RATE",
                               help="Telemetry readings per second per node."),
    duration: float = typer.Option(None, "--duration", envvar="IOTCTL_SIM_DURATION",
                                   help="Stop after this many seconds (default: until Ctrl-C)."),
    prefix: str = typer.Option("sim", "--prefix", envvar="IOTCTL_SIM_PREFIX",
                               help="Device id prefix."),
    json_: bool = JSON_OPTION,
) -> None:
    """Run a simulated fleet: nodes run the firmware's own code against the real broker (docs/simulator.md).

    Devices without credentials are provisioned first.  Ctrl-C stops every node cleanly (retained `offline`).
    """
    import sys
    import time

    from iotctl.simulate import Fleet, validate

    cfg = settings(ctx)
    validate(count, rate, duration, prefix)
    fleet = Fleet(cfg, count, rate, prefix)
    live = None
    try:
        fleet.start()
        if sys.stderr.isatty() and not json_:
            from rich.live import Live

            from iotctl.cli.common import err

            live = Live(console=err(), auto_refresh=False, transient=True)
            live.start()
        deadline = time.monotonic() + duration if duration else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic())))
            if live is not None:
                t = fleet.totals()
                live.update(f"{t['online']}/{t['nodes']} online  published {t['published']}  "
                            f"buffered {t['buffered']}  dropped {t['dropped']}", refresh=True)
    except KeyboardInterrupt:
        info("stopping the simulated fleet")
    finally:
        if live is not None:
            live.stop()
        reports = fleet.stop()
    summary = fleet.summary(reports)
    if json_:
        emit_json(summary)
    else:
        info(f"{summary['nodes']} nodes: published {summary['published']}, buffered {summary['buffered']}, "
             f"dropped {summary['dropped']} in {summary['elapsed_s']:.1f} s")


# ---- flashing boards over USB serial (iotctl/flash) ----

PORT_OPTION = typer.Option(
    None, "--port", envvar="IOTCTL_FLASH_PORT",
    help="Serial port of the board, e.g. /dev/ttyACM0; default: the one attached board.",
)
