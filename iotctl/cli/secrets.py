"""`iotctl secrets seed|list|rotate --env ENV`: an AKS environment's secrets in its Key Vault, never their values."""

from __future__ import annotations

import typer

from iotctl.cli.common import JSON_OPTION, _remember_env, emit_json, info, out, settings

app = typer.Typer(
    help="An AKS environment's secrets in Azure Key Vault: seed the missing ones, list them (never their values), "
    "rotate one. Authenticates with DefaultAzureCredential (az login, AZURE_* variables, workload identity).",
    no_args_is_help=True,
)

ENV_OPTION = typer.Option(
    None,
    "--env",
    envvar="IOTCTL_ENV",
    callback=_remember_env,
    is_eager=True,
    help="Environment whose vault to use: dev, staging, prod or a registered AKS environment.",
    show_default=False,
)
VAULT_OPTION = typer.Option(
    None,
    "--vault-url",
    envvar="IOTCTL_KEYVAULT_URL",
    help="The vault's URI (default: the environment's, from its registration or last deployment). ",
    show_default=False,
)


def _target(ctx: typer.Context, vault_url: str | None):
    from iotctl.deploy.aks import vault_target
    from iotctl.errors import InvalidInput

    cfg = settings(ctx)
    if cfg.env in ("local", "docker") and not vault_url:
        raise InvalidInput("Pass --env with an AKS environment (dev, staging, prod) or --vault-url.")
    return cfg.env, vault_target(cfg.state_dir, cfg.env, vault_url)


@app.command()
def seed(
    ctx: typer.Context,
    _env: str = ENV_OPTION,
    vault_url: str = VAULT_OPTION,
    overwrite: list[str] = typer.Option(
        None,
        "--overwrite",
        help="Also write a new value for this existing secret (repeatable; prefer `rotate`).",
        show_default=False,
    ),
    json_: bool = JSON_OPTION,
) -> None:
    """Generate every secret the environment needs that its vault lacks (CSPRNG; TLS from the environment's CA).

    Existing secrets are kept; a second run has nothing to do.
    """
    from iotctl.secrets.vault import KeyVault
    from iotctl.secrets.vault import seed as seed_vault

    env, target = _target(ctx, vault_url)
    report = seed_vault(
        KeyVault(target.url),
        target.tls_names(),
        overwrite=tuple(overwrite or ()),
        in_cluster_database=target.in_cluster_database,
    )
    if json_:
        emit_json({"environment": env, "vault": target.url, **report.as_dict()})
        return
    for name in report.created:
        info(f"created {name}")
    for name, why in report.skipped.items():
        info(f"skipped {name}: {why}")
    if report.nothing_to_do:
        info(f"nothing to do: every secret of `{env}` is in {target.url} ({len(report.kept)} kept)")
    else:
        info(f"{len(report.created)} secret(s) written to {target.url}; {len(report.kept)} kept")


@app.command("list")
def list_(ctx: typer.Context, _env: str = ENV_OPTION, vault_url: str = VAULT_OPTION, json_: bool = JSON_OPTION) -> None:
    """Names, current versions, content types and last updates; never a value."""
    from rich.table import Table

    from iotctl.secrets.vault import KeyVault, list_secrets

    env, target = _target(ctx, vault_url)
    rows = list_secrets(KeyVault(target.url))
    if json_:
        emit_json({"environment": env, "vault": target.url, "secrets": [r.as_dict() for r in rows]})
        return
    table = Table()
    for column in ("name", "version", "content type", "updated", "state"):
        table.add_column(column, no_wrap=column in ("name", "version"))
    for r in rows:
        if r.version is None:
            state = "MISSING" if r.in_catalog else "-"
        else:
            state = ("iotctl" if r.managed_by_iotctl else "other") + ("" if r.in_catalog else ", not the platform's")
            state += "" if r.enabled else ", disabled"
        updated = r.updated.isoformat(timespec="seconds") if r.updated else "-"
        table.add_row(r.name, r.version or "-", r.content_type or "-", updated, state)
    info(f"environment {env}: {target.url}")
    out().print(table)


@app.command()
def rotate(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The secret to rotate, e.g. mqtt-ingest-password (see `secrets list`)."),
    _env: str = ENV_OPTION,
    vault_url: str = VAULT_OPTION,
    json_: bool = JSON_OPTION,
) -> None:
    """Write a new version of one secret and say what picks it up (ESO's refresh, which pods restart).

    A server certificate is rotated with its key, signed by the environment's CA; `postgres-admin-password` is
    rotated by Terraform, the CA by re-flashing devices (docs/deploy-aks.md).
    """
    from iotctl.secrets.vault import KeyVault
    from iotctl.secrets.vault import rotate as rotate_secret

    env, target = _target(ctx, vault_url)
    report = rotate_secret(KeyVault(target.url), name, tls=target.tls_names())
    if json_:
        emit_json({"environment": env, "vault": target.url, **report.as_dict()})
        return
    info(f"rotated {', '.join(report.rotated)} in {target.url} (version {report.version})")
    info(
        f"picked up by: {report.picked_up_by}; External Secrets copies it within the environment's refresh "
        f"interval (15m in dev, 1h elsewhere), or now with `kubectl -n iots6-{env} annotate externalsecret --all "
        "force-sync=$(date +%s) --overwrite`"
    )
