"""`iotctl env`: named environments (like kubectl contexts): list, show, add, remove."""

from __future__ import annotations

from pathlib import Path

import typer

from iotctl.cli.common import JSON_OPTION, emit_json, info, out, settings

app = typer.Typer(
    help="Environments: which platform the device, config, tail and db commands talk to (select with --env or "
    "IOTCTL_ENV; see docs/environments.md).",
    no_args_is_help=True,
)


@app.command("list")
def list_(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
    """Every environment: the built-in local and docker ones and those added with `iotctl env add`."""
    from rich.table import Table

    from iotctl.environments import list_environments

    cfg = settings(ctx)
    envs = [e.public() for e in list_environments(cfg)]
    current = "docker" if cfg.env == "local" and cfg.docker else cfg.env
    for e in envs:
        e["active"] = e["name"] == current
    if json_:
        emit_json(envs)
        return
    table = Table()
    for column in ("", "name", "kind", "broker", "config server", "credentials"):
        table.add_column(column, no_wrap=column in ("name", "kind"))
    for e in envs:
        table.add_row("*" if e["active"] else "", e["name"], e["kind"], e["broker"], e["config_url"], e["credentials"])
    out().print(table)


@app.command()
def show(
    ctx: typer.Context,
    name: str = typer.Argument(None, help="Environment (default: the active one).", show_default=False),
    json_: bool = JSON_OPTION,
) -> None:
    """An environment's endpoints and where its credentials are, never their values."""
    from iotctl.environments import active

    cfg = settings(ctx)
    data = active(cfg.model_copy(update={"env": name}) if name else cfg).public()
    if json_:
        emit_json(data)
        return
    console = out()
    for key in ("name", "kind", "file", "broker", "broker_ca", "config_url", "credentials", "devices_dir"):
        console.print(f"{key}: {data[key] if data[key] is not None else '-'}", markup=False)
    console.print(f"database: {data['database']['url'] or '-'} ({data['database']['access']})", markup=False)
    console.print(f"device_registry: {data['device_registry']}", markup=False)
    for secret, where in data["secrets"].items():
        state = "present" if where["present"] else ("in Key Vault" if where["file"] is None else "MISSING")
        console.print(f"secret {secret}: {where['file'] or data['credentials']} ({state})", markup=False)


@app.command()
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name: a lowercase letter, then lowercase letters, digits and `-`."),
    kind: str = typer.Option("vm", "--kind", help="local, docker, vm or aks."),
    broker: str = typer.Option(
        None, "--broker", help="Broker URL: mqtts://host:8883 (TLS) or mqtt://host:port.", show_default=False
    ),
    ca: Path = typer.Option(
        None, "--ca", help="PEM file of the CA that signed the broker's certificate.", show_default=False
    ),
    config_url: str = typer.Option(None, "--config-url", help="Config server base URL.", show_default=False),
    database_url: str = typer.Option(
        None, "--database-url", help="postgresql://user@host:port/db, no password.", show_default=False
    ),
    database_access: str = typer.Option(
        "direct", "--database-access", help="direct, or job (a migration Job in the cluster; AKS)."
    ),
    credentials_dir: Path = typer.Option(
        None,
        "--credentials-dir",
        help="Directory of secret files named mqtt-admin-password, mqtt-operator-password, config-admin-token, "
        "postgres-admin-password (copied, 0600).",
        show_default=False,
    ),
    keyvault: str = typer.Option(
        None,
        "--keyvault",
        help="Key Vault URI to read the credentials from instead (an AKS environment; the CA still from --ca).",
        show_default=False,
    ),
    from_stack: Path = typer.Option(
        None,
        "--from-stack",
        help="Register the native stack in this state dir (its ports, CA and secrets), e.g. a second local stack.",
        show_default=False,
    ),
    topic_base: str = typer.Option("iots6", "--topic-base", help="First level of every MQTT topic."),
    description: str = typer.Option("", "--description", help="A note for `env list`."),
    force: bool = typer.Option(False, "--force", help="Replace an existing environment (device credentials kept)."),
    json_: bool = JSON_OPTION,
) -> None:
    """Add (or with --force replace) an environment. Secrets are read from files, never from the command line."""
    from iotctl.environments import register_environment, register_stack, secrets_from_dir
    from iotctl.errors import InvalidInput

    cfg = settings(ctx)
    if from_stack is not None:
        env = register_stack(cfg.state_dir, name, from_stack, kind=kind, description=description, replace=force)
    else:
        if not broker or not config_url:
            raise InvalidInput("Pass --broker and --config-url (or --from-stack DIR); see `iotctl env add --help`.")
        if bool(credentials_dir) == bool(keyvault):
            raise InvalidInput("Pass exactly one of --credentials-dir and --keyvault.")
        host, port, tls = _parse_broker(broker)
        secrets = secrets_from_dir(credentials_dir) if credentials_dir else {}
        if ca is not None:
            secrets["tls-ca-crt"] = ca
        env = register_environment(
            cfg.state_dir,
            name,
            kind,
            broker_host=host,
            broker_port=port,
            broker_tls=tls,
            config_url=config_url,
            database_url=database_url,
            database_access=database_access,
            credentials=f"keyvault:{keyvault}" if keyvault else "files",
            secrets=secrets,
            topic_base=topic_base,
            description=description,
            replace=force,
        )
    if json_:
        emit_json(env.public())
        return
    info(f"environment `{env.name}` ({env.kind}) saved in {env.file}; use it with --env {env.name}")


def _parse_broker(url: str) -> tuple[str, int, bool]:
    from urllib.parse import urlsplit

    from iotctl.errors import InvalidInput

    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise InvalidInput(f"Broker `{url}` is not an mqtt:// or mqtts:// URL; write e.g. mqtts://broker.example:8883.")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise InvalidInput(f"Broker `{url}` has an invalid port; use 1-65535.") from None
    return parts.hostname, port, tls


@app.command()
def remove(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The environment to remove."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask (required without a terminal)."),
) -> None:
    """Forget an environment: its file and its credentials directory, device credentials included."""
    import sys

    from iotctl.environments import BUILTIN, load, remove_environment
    from iotctl.errors import InvalidInput

    if name in BUILTIN:
        raise InvalidInput(f"`{name}` is a built-in environment and cannot be removed.")
    cfg = settings(ctx)
    env = load(cfg, name)
    devices = sorted(p.stem for p in env.devices_dir.glob("*.json")) if env.devices_dir.is_dir() else []
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput(f"Not removing environment `{name}` without a terminal; pass --yes to confirm.")
        extra = f" and the credentials of {len(devices)} device(s)" if devices else ""
        typer.confirm(f"Remove environment `{name}`{extra}?", abort=True, err=True)
    remove_environment(cfg.state_dir, name)
    info(f"removed environment `{name}`" + (f" and {len(devices)} device credential file(s)" if devices else ""))
