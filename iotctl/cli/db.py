"""`iotctl db`: schema migrations."""

from __future__ import annotations

import typer

from iotctl.cli.common import ENV_OPTION, JSON_OPTION, emit_json, info, out, settings

app = typer.Typer(help="Database schema: apply and inspect versioned migrations.", no_args_is_help=True)


@app.command()
def migrate(
    ctx: typer.Context,
    _env: str = ENV_OPTION,
    edition: str = typer.Option(
        None,
        "--edition",
        envvar="IOTCTL_DB_EDITION",
        help="Force an edition (postgres, timescale-apache, timescale) instead of detecting it. "
        "[env: IOTCTL_DB_EDITION]",
    ),
    json_: bool = JSON_OPTION,
) -> None:
    """Apply pending migrations in order, each in a transaction, under an advisory lock; safe to re-run.

    An AKS environment's database is reached from inside its cluster: there this runs the chart's migration Job.
    """
    from iotctl.db.connect import connect
    from iotctl.environments import DB_JOB, active, db_endpoint
    from iots6_platform.core.db import migrate as migrations

    cfg = settings(ctx)
    env = active(cfg)
    if env.database.access == DB_JOB:
        from iotctl.deploy.aks import run_migration_job

        run = run_migration_job(cfg.state_dir, env.name, progress=info)
        if json_:
            emit_json(run.as_dict())
            return
        info(f"{run.message} (Job {run.namespace}/{run.job}; logs: `{run.logs_hint}`)")
        return
    endpoint = db_endpoint(cfg)
    with connect(endpoint) as conn:
        found, applied = migrations.migrate(conn, edition)
    if json_:
        emit_json({"edition": found.name, "applied": [f"{m.version:04d}_{m.name}" for m in applied]})
        return
    for m in applied:
        info(f"applied {m.version:04d}_{m.name} ({m.path.name})")
    info(f"{len(applied)} migration(s) applied; schema up to date on edition `{found.name}`.")


@app.command()
def status(ctx: typer.Context, _env: str = ENV_OPTION, json_: bool = JSON_OPTION) -> None:
    """Show applied and pending migrations and the edition found (TimescaleDB licensed/Apache, or PostgreSQL)."""
    from rich.table import Table

    from iotctl.db.connect import connect
    from iotctl.environments import db_endpoint
    from iots6_platform.core.db import migrate as migrations

    endpoint = db_endpoint(settings(ctx))
    with connect(endpoint) as conn:
        edition, states = migrations.status(conn)
    rows = [
        {
            "version": s.version,
            "name": s.name,
            "state": "applied" if s.applied_at else "pending",
            "applied_at": s.applied_at,
            "edition": s.edition,
        }
        for s in states
    ]
    if json_:
        emit_json(
            {
                "edition": edition.name,
                "server_version": edition.server_version,
                "timescaledb_version": edition.timescaledb_version,
                "note": edition.note,
                "migrations": rows,
            }
        )
        return
    table = Table(title=f"edition: {edition.name} (PostgreSQL {edition.server_version}) {edition.note}")
    for column in ("version", "name", "state", "applied_at"):
        table.add_column(column)
    for r in rows:
        table.add_row(f"{r['version']:04d}", r["name"], r["state"], str(r["applied_at"] or ""))
    out().print(table)
