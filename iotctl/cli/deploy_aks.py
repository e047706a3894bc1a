"""`iotctl deploy aks --env dev|staging|prod`: Terraform, secrets, Argo CD and a wait until Synced/Healthy.

Thin: options, the operator's questions, the progress view, the result. Everything else is iotctl.deploy.aks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from iotctl.cli.common import _remember_env, console, emit_json, err, is_terminal, out, settings


def aks(
    ctx: typer.Context,
    _env: str = typer.Option(
        None,
        "--env",
        envvar="IOTCTL_ENV",
        callback=_remember_env,
        is_eager=True,
        help="Environment to deploy: dev, staging or prod (its namespace is iots6-<env>).",
        show_default=False,
    ),
    plan: bool = typer.Option(False, "--plan", help="Only plan both Terraform roots and show the plans."),
    status: bool = typer.Option(
        False, "--status", help="Show Terraform outputs, the Application's sync/health, images and the last sync."
    ),
    check: bool = typer.Option(
        False, "--check", help="Only check: images in the registry, the workload identity chain, the rollout."
    ),
    destroy: bool = typer.Option(
        False, "--destroy", help="Destroy the environment (names what goes; its name must be typed)."
    ),
    yes: bool = typer.Option(
        False,
        "--yes",
        "-y",
        envvar="IOTCTL_AKS_YES",
        help="Apply plans and sync prod without asking (pipelines); never enough for --destroy.",
    ),
    location: str = typer.Option(
        None,
        "--location",
        envvar="IOTCTL_AKS_LOCATION",
        help="Azure region of the platform, e.g. westeurope (remembered).",
        show_default=False,
    ),
    allow_cidr: list[str] = typer.Option(
        None,
        "--allow-cidr",
        envvar="IOTCTL_AKS_ALLOW_CIDRS",
        help="Who may reach the API server and the vault (repeatable; default: your detected public address added "
        "to the remembered ones; space-separated in the variable).",
        show_default=False,
    ),
    repo_url: str = typer.Option(
        None,
        "--repo-url",
        envvar="IOTCTL_AKS_REPO_URL",
        help="Git repository Argo CD deploys from (default: this checkout's origin).",
        show_default=False,
    ),
    revision: str = typer.Option(
        None,
        "--revision",
        envvar="IOTCTL_AKS_REVISION",
        help="Branch, tag or commit this environment follows (default: main).",
        show_default=False,
    ),
    broker_host: str = typer.Option(
        None,
        "--broker-host",
        envvar="IOTCTL_AKS_BROKER_HOST",
        help="DNS name devices reach the broker at (its certificate names it; remembered). ",
        show_default=False,
    ),
    config_host: str = typer.Option(
        None,
        "--config-host",
        envvar="IOTCTL_AKS_CONFIG_HOST",
        help="DNS name of the config server (its certificate names it; remembered).",
        show_default=False,
    ),
    backend_config: Path = typer.Option(
        None,
        "--backend-config",
        envvar="IOTCTL_AKS_BACKEND_CONFIG",
        help="backend.hcl for Terraform state in Azure Storage (default: local state in the state dir). ",
        show_default=False,
    ),
    chart_mirror: str = typer.Option(
        None,
        "--chart-mirror",
        envvar="IOTCTL_AKS_CHART_MIRROR",
        help="Helm repository (https:// or oci://) mirroring the argo-cd and external-secrets charts. ",
        show_default=False,
    ),
    database_url: str = typer.Option(
        None,
        "--database-url",
        envvar="IOTCTL_AKS_DATABASE_URL",
        help="postgresql://user@host:port/db (no password) where this machine reaches the environment's database, "
        "e.g. through a port-forward; only `db status` needs it (remembered): devices are registered through the "
        "config server.",
        show_default=False,
    ),
    timeout: float = typer.Option(
        1200.0,
        "--timeout",
        min=1,
        envvar="IOTCTL_AKS_TIMEOUT",
        help="Seconds to wait for Synced/Healthy.",
    ),
    confirm_destroy: str = typer.Option(
        None,
        "--confirm-destroy",
        envvar="IOTCTL_AKS_CONFIRM_DESTROY",
        help="The environment's name, typed ahead for --destroy without a terminal.",
        show_default=False,
    ),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout (progress stays on stderr)."),
) -> None:
    """Deploy an environment to AKS: Terraform (platform + environment), Key Vault secrets, Argo CD and External
    Secrets, the ApplicationSet; wait until Synced/Healthy; register it for --env.

    Plans are shown and applied after a yes (or --yes). The first run needs --location, --broker-host and
    --config-host; later runs remember them. See docs/deploy-aks.md for the walk-through.
    """
    from iotctl.deploy.aks import AksDeployment, AksRequest
    from iotctl.errors import InvalidInput

    modes = [
        name for name, on in (("--plan", plan), ("--status", status), ("--check", check), ("--destroy", destroy)) if on
    ]
    if len(modes) > 1:
        raise InvalidInput(f"{' and '.join(modes)} exclude each other; pass one of them.")
    cfg = settings(ctx)
    request = AksRequest(
        env=cfg.env,
        location=location,
        allow_cidrs=tuple(allow_cidr or ()),
        repo_url=repo_url,
        revision=revision,
        broker_host=broker_host,
        config_host=config_host,
        backend_config=backend_config,
        chart_mirror=chart_mirror,
        timeout_s=timeout,
        database_url=database_url,
    )
    view = _View(json_)
    hooks = view.hooks(yes=yes, confirm_destroy=confirm_destroy)
    deployment = AksDeployment(cfg.state_dir, request, hooks)
    with view:
        if plan:
            result = deployment.plan()
        elif status:
            result = deployment.status()
        elif check:
            result = deployment.check()
        elif destroy:
            result = deployment.destroy()
        else:
            result = deployment.deploy()
    if json_:
        emit_json(result)
    elif plan:
        _show_plan(result)
    elif status:
        _show_status(result)
    elif check:
        _show_check(result)
    elif destroy:
        out().print(
            f"environment `{result['environment']}` destroyed ({len(result['terraform']['changes'])} resources)"
        )
    else:
        _show_deployed(result)
    if check and not result["ok"]:
        raise typer.Exit(1)


class _View:
    """Progress on stderr: a live table of the rollout on a terminal, plain lines in a pipe."""

    def __init__(self, json_: bool) -> None:
        self.console = err()
        self.live_view = is_terminal(sys.stderr) and not json_
        self._live = None
        self._last: dict[str, str] = {}

    def __enter__(self) -> _View:
        return self

    def __exit__(self, *_exc) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def step(self, line: str) -> None:
        target = self._live.console if self._live is not None else self.console
        target.print(f"{'• ' if self.live_view else 'deploy aks: '}{line}")

    def checks(self, checks) -> None:
        if self.live_view:
            if self._live is None:
                from rich.live import Live

                self._live = Live(console=console(stderr=True, live=True), auto_refresh=False, transient=False)
                self._live.start()
            self._live.update(_checks_table(checks), refresh=True)
            return
        for check in checks:  # a pipe gets one line per change of a row
            line = f"{check.state}" + (f" ({check.message})" if check.message else "")
            if self._last.get(check.what) != line:
                self._last[check.what] = line
                self.console.print(f"deploy aks: rollout: {check.what}: {line}")

    def hooks(self, *, yes: bool, confirm_destroy: str | None):
        from iotctl.deploy.aks import Hooks
        from iotctl.errors import InvalidInput

        def confirm(question: str, details: list[str]) -> bool:
            for line in details:
                self.console.print(f"  {line}")
            if yes:
                self.step(f"{question} yes (--yes)")
                return True
            if not is_terminal(sys.stdin):
                raise InvalidInput(f"{question.rstrip('?')}: not asking without a terminal; pass --yes to go ahead.")
            return typer.confirm(question, default=False, err=True)

        def type_name(prompt: str, lines: list[str]) -> str:
            for line in lines:
                self.console.print(f"  - {line}")
            if confirm_destroy is not None:
                return confirm_destroy
            if not is_terminal(sys.stdin):
                raise InvalidInput(
                    "not destroying without a terminal; pass --confirm-destroy with the environment's name."
                )
            return typer.prompt(prompt, err=True, default="", show_default=False)

        return Hooks(confirm=confirm, step=self.step, checks=self.checks, type_name=type_name)


def _checks_table(checks):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=None, show_edge=False)
    for column in ("", "what", "state", "message / fix"):
        table.add_column(column)
    for c in checks:
        mark = Text("✓", style="green") if c.ready else Text("…", style="yellow")
        table.add_row(mark, c.what, c.state, " — ".join(x for x in (c.message, c.fix) if x))
    return table


def _show_plan(result: dict) -> None:
    console = out()
    for label, plan in (("platform", result["platform"]), ("environment", result.get("environment_plan"))):
        if plan is None:
            console.print(f"{label}: not planned")
            continue
        counts = ", ".join(f"{n} to {a}" for a, n in plan["counts"].items() if n) or "no changes"
        console.print(f"{label}: {counts}")
        for change in plan["changes"]:
            console.print(f"  {change['action']:>8}  {change['address']}")
    if result.get("note"):
        console.print(f"note: {result['note']}")


def _show_status(result: dict) -> None:
    console = out()
    console.print(f"environment {result['environment']} (Terraform applied {result.get('applied_at') or '-'})")
    for root, outputs in result["terraform"].items():
        console.print(f"terraform {root}:")
        for key in sorted(outputs):
            value = outputs[key]
            if isinstance(value, dict | list):
                import json

                value = json.dumps(value, sort_keys=True)
            console.print(f"  {key} = {value if value is not None else '(sensitive)'}")
    app = result.get("application") or {}
    if "error" in app:
        console.print(f"application: unknown ({app['error']})")
    elif not app.get("exists"):
        console.print("application: not generated yet")
    else:
        console.print(
            f"application: {app['sync']}/{app['health']} at {app.get('revision') or '-'}; last sync "
            f"{app.get('last_sync') or '-'} ({app.get('last_sync_phase') or '-'})"
        )
        for image in app.get("images") or []:
            console.print(f"  running image {image}")
    for image in result.get("images") or []:
        console.print(f"values image {image['component']}: {image['reference']}")
    for check in result.get("checks") or []:
        console.print(f"{'ok' if check['ready'] else 'waiting'}: {check['what']}: {check['state']} {check['message']}")
    endpoints = result.get("endpoints") or {}
    for key in ("broker", "config_server"):
        if key in endpoints:
            console.print(f"{key}: {endpoints[key]}")


def _show_check(result: dict) -> None:
    console = out()
    for image in result["images"]:
        console.print(f"image {image['reference']}: {image['state']}" + (f"; {image['fix']}" if image["fix"] else ""))
    for finding in result["identity"]:
        console.print(f"identity {finding['link']}: {finding['problem']}; {finding['fix']}")
    for check in result["checks"]:
        fix = f"; {check['fix']}" if check["fix"] and not check["ready"] else ""
        console.print(
            f"{'ok' if check['ready'] else 'not ready'}: {check['what']}: {check['state']} {check['message']}{fix}"
        )
    console.print(f"environment {result['environment']}: {'all checks pass' if result['ok'] else 'problems found'}")


def _show_deployed(result: dict) -> None:
    console = out()
    ep = result["endpoints"]
    console.print(f"environment {result['environment']} is Synced and Healthy; registered in {result['registered']}")
    console.print(
        f"broker: {ep['broker']}" + (f" (load balancer {ep['broker_address']})" if ep["broker_address"] else "")
    )
    console.print(
        f"config server: {ep['config_server']}"
        + (f" (ingress {ep['config_server_address']})" if ep["config_server_address"] else "")
    )
    for record in ep["dns_records"]:
        console.print(f"DNS: {record}")
    console.print(f"grafana: {ep['grafana']}")
    env = result["environment"]
    console.print(
        f"next: iotctl device provision <id> --env {env} (through the config server); iotctl tail sensors --env {env}"
    )
