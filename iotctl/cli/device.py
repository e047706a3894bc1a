"""`iotctl device`: identities (provision, fleet, retire), simulated nodes, and boards (flash, list, logs)."""

from __future__ import annotations

from pathlib import Path

import typer

from iotctl.cli.common import ENV_OPTION, JSON_OPTION, emit_json, info, out, settings
from iots6_platform.core import contract

app = typer.Typer(
    help="Devices: identities (MQTT account, ACL, config token), a simulated fleet, flashing boards.",
    no_args_is_help=True,
)


@app.command()
def provision(
    ctx: typer.Context,
    _env: str = ENV_OPTION,
    device_ids: list[str] = typer.Argument(..., help=f"One or more device ids ({contract.DEVICE_ID_PATTERN})."),
    rotate: bool = typer.Option(False, "--rotate", help="Issue new credentials for an existing device."),
    location: str = typer.Option(None, "--location", help="Label `location` (site) for dashboards."),
    json_: bool = JSON_OPTION,
) -> None:
    """Create each device's broker client (publish only under its own topics), registry row and config token.

    In the active environment (--env). The broker client is made over MQTT by the broker's dynamic-security admin;
    the registry row and token are written in the database on the local stacks, and through the config server's
    admin API over HTTPS (its admin token and CA) on a vm or aks environment, so no database access is needed
    there. Credentials are written to the environment's devices/<id>.json (mode 0600; <state-dir>/devices for
    `local`) and never printed.
    """
    from iotctl.devices import provisioning, validate_device_id

    for device_id in device_ids:
        validate_device_id(device_id)  # all of them, before anything is made
    results = []
    with provisioning(settings(ctx)) as session:
        for device_id in device_ids:
            labels = {"location": location} if location else None
            creds, path = session.provision(device_id, rotate=rotate, labels=labels)
            results.append({**creds.public(), "credentials_file": str(path)})
            if not json_:
                info(
                    f"provisioned `{device_id}` in environment `{creds.environment}`; credentials in {path} (mode 0600)"
                )
    if json_:
        emit_json(results if len(results) > 1 else results[0])


@app.command("fleet")
def fleet(ctx: typer.Context, _env: str = ENV_OPTION, json_: bool = JSON_OPTION) -> None:
    """List the registered fleet: last seen, status, firmware, RSSI, readings dropped on the device, location,
    broker account.

    From the database on the local stacks, from the config server's admin API on a vm or aks environment.
    """
    from rich.table import Table

    from iotctl.devices import list_devices

    rows = list_devices(settings(ctx))
    if json_:
        emit_json(rows)
        return
    table = Table()
    for column in ("device", "status", "last seen", "fw", "rssi", "dropped", "location", "broker account"):
        table.add_column(column, justify="right" if column in ("rssi", "dropped") else "left")
    for r in rows:
        state = "retired" if r["retired_at"] else (r["status"] or "-")
        table.add_row(
            r["device_id"],
            state,
            str(r["last_seen"] or "-"),
            r["fw"] or "-",
            str(r["rssi"] or "-"),
            str(r["dropped"]),
            (r["labels"] or {}).get("location", "-"),
            "yes" if r["broker_account"] else "no",
        )
    out().print(table)


@app.command()
def retire(
    ctx: typer.Context, _env: str = ENV_OPTION, device_id: str = typer.Argument(..., help="The device to retire.")
) -> None:
    """Disable a device's broker client (disconnecting it at once) and revoke its config token; readings stay.

    The registry row is marked retired in the database on the local stacks, through the config server's admin API
    on a vm or aks environment.
    """
    from iotctl.devices import retire as do_retire

    do_retire(settings(ctx), device_id)
    info(f"retired `{device_id}`: broker client disabled and disconnected, config token revoked; readings kept")


@app.command()
def simulate(
    ctx: typer.Context,
    _env: str = ENV_OPTION,
    count: int = typer.Option(
        ..., "--count", envvar="IOTCTL_SIM_COUNT", help="Number of virtual nodes <prefix>-0001 ..."
    ),
    rate: float = typer.Option(1.0, "--rate", envvar="IOTCTL_SIM_RATE", help="Telemetry readings per second per node."),
    duration: float = typer.Option(
        None,
        "--duration",
        envvar="IOTCTL_SIM_DURATION",
        help="Stop after this many seconds (default: until Ctrl-C).",
    ),
    prefix: str = typer.Option("sim", "--prefix", envvar="IOTCTL_SIM_PREFIX", help="Device id prefix."),
    json_: bool = JSON_OPTION,
) -> None:
    """Run a simulated fleet: nodes run the firmware's own code against the real broker (docs/simulator.md).

    Devices without credentials are provisioned first.  Ctrl-C stops every node cleanly (retained `offline`).
    """
    import signal
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

            from iotctl.cli.common import console

            live = Live(console=console(stderr=True, live=True), auto_refresh=False, transient=True)
            live.start()
        # SIGTERM (e.g. from `make demo`'s cleanup, where a background job ignores SIGINT) stops cleanly too.
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        deadline = time.monotonic() + duration if duration else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic())))
            if live is not None:
                t = fleet.totals()
                live.update(
                    f"{t['online']}/{t['nodes']} online  published {t['published']}  "
                    f"buffered {t['buffered']}  dropped {t['dropped']}",
                    refresh=True,
                )
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
        info(
            f"{summary['nodes']} nodes: published {summary['published']}, buffered {summary['buffered']}, "
            f"dropped {summary['dropped']} in {summary['elapsed_s']:.1f} s"
        )


# ---- flashing boards over USB serial (iotctl/flash) ----

PORT_OPTION = typer.Option(
    None,
    "--port",
    envvar="IOTCTL_FLASH_PORT",
    help="Serial port of the board, e.g. /dev/ttyACM0; default: the one attached board.",
)


@app.command()
def flash(
    ctx: typer.Context,
    _env: str = ENV_OPTION,
    device_id: str = typer.Option(..., "--device-id", help="The device's id; provisioned first if it has none."),
    port: str = PORT_OPTION,
    wifi_ssid: str = typer.Option(None, "--wifi-ssid", envvar="IOTCTL_WIFI_SSID", help="Wi-Fi network name."),
    wifi_password_file: Path = typer.Option(
        None,
        "--wifi-password-file",
        envvar="IOTCTL_WIFI_PASSWORD_FILE",
        help="File (mode 0600) holding the Wi-Fi password.",
    ),
    keep_wifi: bool = typer.Option(False, "--keep-wifi", help="Keep the Wi-Fi credentials already on the board."),
    compile_: bool = typer.Option(False, "--compile", help="Cross-compile lib/ to .mpy with mpy-cross."),
    mip_cache: Path = typer.Option(
        None,
        "--mip-cache",
        envvar="IOTCTL_MIP_CACHE",
        help="Folder laid out like /lib holding the micropython-lib packages, for "
        "offline benches; default: mpremote mip over the internet.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Do not wait for the board to report it is online."),
    online_timeout: float = typer.Option(
        60.0, "--online-timeout", envvar="IOTCTL_ONLINE_TIMEOUT", help="Seconds to wait for the online line."
    ),
    json_: bool = JSON_OPTION,
) -> None:
    """Put the firmware and the device's identity (/device.json) on a Pico W running MicroPython >= 1.23.

    Copies only files whose SHA-256 differs from the board's, soft-resets it and waits for the firmware's online
    line. Secrets go over the serial link only; nothing secret is printed.
    """
    from iotctl.cli.common import err
    from iotctl.flash.discover import pick_port
    from iotctl.flash.flasher import FlashRequest
    from iotctl.flash.flasher import flash as do_flash

    request = FlashRequest(
        port=pick_port(port),
        device_id=device_id,
        wifi_ssid=wifi_ssid,
        wifi_password_file=wifi_password_file,
        keep_wifi=keep_wifi,
        compile_=compile_,
        dry_run=dry_run,
        mip_cache=mip_cache,
        wait_online=not no_wait,
        online_timeout=online_timeout,
    )
    console = err()
    if console.is_terminal and not json_:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        with Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=console, transient=True
        ) as bar:
            task = bar.add_task("connecting", total=None)
            summary = do_flash(
                settings(ctx),
                request,
                progress=lambda step, done, total: bar.update(
                    task, description=step, completed=done, total=total or None
                ),
            )
    else:
        summary = do_flash(settings(ctx), request)
    if json_:
        emit_json(summary)
        return
    verb = "would copy" if dry_run else "copied"
    info(
        f"`{summary['device_id']}` on {summary['port']} (MicroPython {summary['micropython']}): {verb} "
        f"{len(summary['copy'])} file(s) ({summary['bytes_to_copy']} bytes), {len(summary['unchanged'])} "
        f"unchanged, {len(summary['remove'])} removed; device file {summary['device_file']}"
    )
    for path in summary["copy"]:
        out().print(f"{'copy' if dry_run else 'copied'} {path}")
    for path in summary["remove"]:
        out().print(f"{'remove' if dry_run else 'removed'} {path}")
    for package in summary["packages_to_install"]:
        out().print(f"{'install' if dry_run else 'installed'} {package} (mip)")
    if summary["online"]:
        info(f"online: {summary['online']}")


@app.command("list")
def list_boards(
    ports: list[str] = typer.Option(
        None,
        "--port",
        help="Also probe this port (repeatable), e.g. a USB-serial adapter or a pseudo-terminal.",
    ),
    json_: bool = JSON_OPTION,
) -> None:
    """List attached MicroPython boards: port, USB serial number, VID:PID, MicroPython version, device id."""
    from rich.table import Table

    from iotctl.flash.discover import list_boards as do_list

    rows = do_list(ports or [])
    if json_:
        emit_json(rows)
        return
    if not rows:
        info("no MicroPython board found on USB; plug one in or pass --port")
        return
    table = Table()
    for column in ("port", "serial", "vid:pid", "micropython", "device", "problem"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["port"],
            r["serial_number"] or "-",
            r["vid_pid"] or "-",
            r["micropython"] or "-",
            r["device_id"] or "-",
            r["error"] or "",
        )
    out().print(table)


@app.command()
def logs(
    port: str = PORT_OPTION,
    lines: int = typer.Option(None, "--lines", min=1, help="Stop after this many lines."),
    timeout: float = typer.Option(None, "--timeout", min=0, help="Stop after this many seconds."),
) -> None:
    """Follow a board's serial console (the firmware keeps running) until Ctrl-C, --lines or --timeout."""
    import sys

    from iotctl.flash.board import console
    from iotctl.flash.discover import pick_port

    with console(pick_port(port)) as board:
        try:
            for line in board.read_lines(timeout=timeout, max_lines=lines):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass


def _raise_keyboard_interrupt(_signum, _frame):
    raise KeyboardInterrupt
