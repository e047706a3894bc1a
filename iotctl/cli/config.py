"""`iotctl config`: read and change device configuration on the config server (admin API)."""

from __future__ import annotations

from pathlib import Path

import typer

from iotctl.cli.common import ENV_OPTION, JSON_OPTION, emit_json, info, out, settings

app = typer.Typer(
    help="Device configuration on the config server: get, set, push, diff, history. "
    "(env: IOTCTL_CONFIG_URL, IOTCTL_CONFIG_ADMIN_TOKEN_FILE)",
    no_args_is_help=True,
)

FLEET_OPTION = typer.Option(False, "--fleet", help="The fleet-wide defaults instead of one device.")
DEVICE_OPTION = typer.Option(None, "--device", help="The device whose overrides FILE replaces.", show_default=False)
ASSIGNMENTS_ARGUMENT = typer.Argument(
    ...,
    help="DEVICE_ID then key=value ... (with --fleet: only key=value). Values are JSON where valid; "
    "dotted keys reach nested objects (labels.location=lab); key=null removes a key.",
    show_default=False,
)
PUSH_FILE_ARGUMENT = typer.Argument(..., help="JSON or TOML document (.toml) replacing the overrides/defaults.")
DIFF_FILE_ARGUMENT = typer.Argument(..., help="JSON or TOML document (.toml) to compare.")


def _target(device_id: str | None, fleet: bool) -> str | None:
    from iotctl.errors import InvalidInput

    if fleet == bool(device_id):
        raise InvalidInput("Name one device id or pass `--fleet` (not both); see `iotctl config --help`.")
    return None if fleet else device_id


def _label(target: str | None) -> str:
    return "fleet defaults" if target is None else f"device `{target}`"


def _print_change(change: dict) -> None:
    from iotctl.devconfig.client import format_change

    for line in format_change(change):
        typer.echo(line)


@app.command()
def get(
    ctx: typer.Context,
    _env: str = ENV_OPTION,
    device_id: str = typer.Argument(None, help="Device id (omit with --fleet).", show_default=False),
    fleet: bool = FLEET_OPTION,
    json_: bool = JSON_OPTION,
) -> None:
    """Show the effective configuration and what is set at this level (fleet defaults or device overrides)."""
    from rich.table import Table

    from iotctl.devconfig.client import admin_client, stored_document
    from iots6_platform.core.devconfig.schema import diff

    target = _target(device_id, fleet)
    found = admin_client(settings(ctx)).get(target)
    if json_:
        emit_json(found)
        return
    effective = {k: v for k, v in found["effective"].items() if k not in ("device_id", "version")}
    own = diff({}, stored_document(found))  # dotted keys set at this level
    table = Table(title=f"{_label(target)}: version {found['version']}")
    for column in ("key", "value", "set here"):
        table.add_column(column)
    for key, value in diff({}, effective).items():
        table.add_row(key, str(value["new"]), "yes" if key in own else "")
    out().print(table)


@app.command("set")
def set_(
    ctx: typer.Context,
    _env: str = ENV_OPTION,
    args: list[str] = ASSIGNMENTS_ARGUMENT,
    fleet: bool = FLEET_OPTION,
    json_: bool = JSON_OPTION,
) -> None:
    """Change some keys of a device's overrides (or of the fleet defaults) and push the change live."""
    from iotctl.devconfig.client import admin_client, stored_document
    from iotctl.errors import InvalidInput
    from iots6_platform.core.devconfig.schema import diff, merge, parse_assignment

    device_id = None if fleet else args[0]
    assignments = args if fleet else args[1:]
    if not assignments:
        raise InvalidInput("No `key=value` given; write for example `iotctl config set dev-1 telemetry_interval_s=30`.")
    target = _target(device_id, fleet)
    patch: dict = {}
    for text in assignments:
        patch = merge(patch, parse_assignment(text))  # keeps nulls: they remove keys on the server
    client = admin_client(settings(ctx))
    before = client.get(target)
    after = client.write(target, patch, patch=True)
    change = diff(stored_document(before), stored_document(after))
    if json_:
        emit_json({"device_id": target, "version": after["version"], "change": change})
        return
    _print_change(change)
    info(f"{_label(target)} at version {after['version']}" + ("" if change else " (nothing changed)") + ".")


def _compare(ctx: typer.Context, file: Path, device: str | None, fleet: bool):
    from iotctl.devconfig.client import admin_client, load_document, stored_document
    from iots6_platform.core.devconfig.schema import diff

    target = _target(device, fleet)
    doc = load_document(file)
    client = admin_client(settings(ctx))
    before = client.get(target)
    return client, target, doc, before, diff(stored_document(before), doc)


@app.command()
def push(
    ctx: typer.Context,
    _env: str = ENV_OPTION,
    file: Path = PUSH_FILE_ARGUMENT,
    device: str = DEVICE_OPTION,
    fleet: bool = FLEET_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (required without a TTY)."),
    json_: bool = JSON_OPTION,
) -> None:
    """Replace a device's overrides (--device) or the fleet defaults (--fleet) with FILE, showing the diff."""
    import sys

    from iotctl.errors import InvalidInput

    client, target, doc, before, change = _compare(ctx, file, device, fleet)
    if not change:
        if json_:
            emit_json({"device_id": target, "version": before["version"], "change": {}})
        else:
            info(f"{_label(target)} already matches `{file}`; nothing to push.")
        return
    if not json_:
        _print_change(change)
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput("Not asking for confirmation without a terminal; pass `--yes` to push.")
        typer.confirm(f"Push this change to {_label(target)}?", abort=True, err=True)
    after = client.write(target, doc, patch=False, if_match=before["version"])
    if json_:
        emit_json({"device_id": target, "version": after["version"], "change": change})
        return
    info(f"{_label(target)} at version {after['version']}.")


@app.command("diff")
def diff_(
    ctx: typer.Context,
    _env: str = ENV_OPTION,
    file: Path = DIFF_FILE_ARGUMENT,
    device: str = DEVICE_OPTION,
    fleet: bool = FLEET_OPTION,
    json_: bool = JSON_OPTION,
) -> None:
    """Show what `push FILE` would change, without changing anything."""
    _client, target, _doc, before, change = _compare(ctx, file, device, fleet)
    if json_:
        emit_json({"device_id": target, "version": before["version"], "change": change})
        return
    _print_change(change)
    info(f"{len(change)} key(s) differ from {_label(target)} at version {before['version']}.")


@app.command()
def history(
    ctx: typer.Context,
    _env: str = ENV_OPTION,
    device_id: str = typer.Argument(None, help="Device id (omit with --fleet).", show_default=False),
    fleet: bool = FLEET_OPTION,
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="Newest entries to show."),
    json_: bool = JSON_OPTION,
) -> None:
    """Who changed what and when, newest first, with the resulting version."""
    from rich.table import Table

    from iotctl.devconfig.client import admin_client, format_change

    target = _target(device_id, fleet)
    entries = admin_client(settings(ctx)).history(target, limit)
    if json_:
        emit_json(entries)
        return
    table = Table(title=f"history of {_label(target)}")
    for column in ("version", "changed_at", "actor", "change"):
        table.add_column(column)
    for e in entries:
        table.add_row(str(e["version"]), e["changed_at"], e["actor"], "\n".join(format_change(e["change"])))
    out().print(table)
