"""`iotctl device`: identities of devices (provision, list, retire)."""

from __future__ import annotations

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
