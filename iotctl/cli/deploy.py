"""`iotctl deploy`: put the platform on a target. One module per target, each registered here with one line."""

from __future__ import annotations

import typer

from iotctl.cli import deploy_aks, deploy_vm

app = typer.Typer(
    help="Deploy the platform to a target and register it as an environment (docs/deploy-vm.md, docs/deploy-aks.md).",
    no_args_is_help=True,
)

app.command("vm")(deploy_vm.vm)
app.command("aks")(deploy_aks.aks)
