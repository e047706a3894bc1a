"""`iotctl deploy vm`: the platform on one Azure VM (Terraform + Ansible), or on a host you have (`--host`).

Thin: options, the operator's questions, progress, the result. Everything else is iotctl.deploy.vm.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from iotctl.cli.common import _remember_env, console, emit_json, is_terminal, out, settings


def _read_extravars(path: Path | None) -> dict:
    if path is None:
        return {}
    from iotctl.errors import InvalidInput

    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(
            f"Extra variables file `{path}` cannot be read ({exc.strerror}); pass a readable file."
        ) from None
    try:
        import yaml

        data = yaml.safe_load(text) if path.suffix in (".yml", ".yaml") else json.loads(text)
    except Exception as exc:  # noqa: BLE001 - yaml and json raise different errors; both are the file's fault
        raise InvalidInput(f"Extra variables file `{path}` is not valid YAML/JSON ({exc}); fix it.") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"Extra variables file `{path}` must hold a mapping of variable names to values.")
    return data


class _Progress:
    """Steps and Ansible's task results: a spinner line on a terminal, plain lines in a pipe (stderr)."""

    def __init__(self) -> None:
        import sys

        self.console = console(stderr=True)
        self.terminal = is_terminal(sys.stderr)
        self.status = None
        self.step = ""

    def __enter__(self) -> _Progress:
        if self.terminal:
            self.status = self.console.status("starting")
            self.status.start()
        return self

    def __exit__(self, *_exc) -> None:
        if self.status is not None:
            self.status.stop()

    def __call__(self, message: str) -> None:
        self.step = message
        if self.status is not None:
            self.status.update(message)
        self.console.print(message)

    def task(self, event) -> None:
        if self.status is not None:
            self.status.update(f"{self.step}: {event.task}")
        elif event.status in ("changed", "failed", "unreachable"):
            self.console.print(f"  {event.status}: {event.task}")

    def pause(self):
        if self.status is not None:
            self.status.stop()

    def resume(self):
        if self.status is not None:
            self.status.start()


def _show_plan(plan, *, destroy: bool = False) -> None:
    c = console(stderr=True)
    counts = plan.counts()
    c.print(
        f"plan: {counts['create']} to create, {counts['update']} to update, {counts['replace']} to replace, "
        f"{counts['delete']} to delete"
    )
    for change in plan.changes:
        c.print(f"  {change.action}: {change.address}")


def vm(
    ctx: typer.Context,
    env: str = typer.Option(
        "vm",
        "--env",
        callback=_remember_env,
        is_eager=True,
        envvar="IOTCTL_ENV",
        help="Name of the environment to create or update (Azure names: 2-10 lowercase letters/digits). Default: vm.",
        show_default=False,
    ),
    host: str = typer.Option(
        None,
        "--host",
        envvar="IOTCTL_DEPLOY_HOST",
        help="Configure this existing Debian 12 / Ubuntu 24.04 host over SSH instead of creating an Azure VM: "
        "USER@ADDRESS[:PORT].",
        show_default=False,
    ),
    plan_only: bool = typer.Option(False, "--plan", help="Only plan the Azure resources and show the plan."),
    status: bool = typer.Option(False, "--status", help="Show Terraform's outputs and each service's state."),
    destroy: bool = typer.Option(
        False, "--destroy", help="Delete the Azure resource group (its name must be typed, or --yes)."
    ),
    yes: bool = typer.Option(
        False,
        "--yes",
        "-y",
        envvar="IOTCTL_DEPLOY_YES",
        help="Apply without asking; with --destroy, delete without typing the name.",
    ),
    location: str = typer.Option(
        "westeurope",
        "--location",
        envvar="IOTCTL_AZURE_LOCATION",
        help="Azure region. Default: westeurope.",
        show_default=False,
    ),
    ssh_key: Path = typer.Option(
        None,
        "--ssh-key",
        envvar="IOTCTL_SSH_KEY",
        help="Private SSH key (its public half PATH.pub goes on the VM). Default: "
        "~/.ssh/id_ed25519, id_ecdsa or id_rsa.",
        show_default=False,
    ),
    ssh_from: str = typer.Option(
        None,
        "--ssh-from",
        envvar="IOTCTL_SSH_FROM",
        help="CIDR allowed to SSH (NSG and host firewall). Default: your detected public address /32.",
        show_default=False,
    ),
    mqtt_from: list[str] = typer.Option(
        None,
        "--mqtt-from",
        envvar="IOTCTL_MQTT_FROM",
        help="CIDR allowed to reach MQTT over TLS, 8883 (repeatable; the env var is space-separated). "
        "Default: 0.0.0.0/0 (devices move between networks).",
        show_default=False,
    ),
    https_from: list[str] = typer.Option(
        None,
        "--https-from",
        envvar="IOTCTL_HTTPS_FROM",
        help="CIDR allowed to reach HTTPS, 443 (repeatable; the env var is space-separated). Default: 0.0.0.0/0.",
        show_default=False,
    ),
    vm_size: str = typer.Option(
        None,
        "--vm-size",
        envvar="IOTCTL_VM_SIZE",
        help="Azure VM size. Default: Standard_B2als_v2.",
        show_default=False,
    ),
    subscription: str = typer.Option(
        None,
        "--subscription",
        envvar="IOTCTL_AZURE_SUBSCRIPTION",
        help="Azure subscription id. Default: ARM_SUBSCRIPTION_ID or `az` login.",
        show_default=False,
    ),
    extra_vars: Path = typer.Option(
        None,
        "--extra-vars",
        envvar="IOTCTL_DEPLOY_EXTRA_VARS",
        help="YAML/JSON file of playbook variables (ports, Grafana on/off, …: infra/ansible/README.md).",
        show_default=False,
    ),
    skip_check: bool = typer.Option(
        False,
        "--skip-check",
        envvar="IOTCTL_DEPLOY_SKIP_CHECK",
        help="Do not run the end-to-end check (a reading over TLS into the database).",
    ),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON to stdout (no secret in it)."),
) -> None:
    """Deploy the whole platform to one VM and register it as environment --env.

    Plan the Azure resources (resource group, network, NSG open only on 8883/443 and SSH from your address, Debian 12
    VM, data disk), show the plan, ask, apply; configure the VM with Ansible; check that a reading published over TLS
    lands in the database; register the environment so `device provision`, `config` and `tail` work with --env.
    Re-running changes nothing when nothing changed. docs/deploy-vm.md explains every step.
    """
    from iotctl.deploy import vm as deploy_vm
    from iotctl.errors import InvalidInput

    cfg = settings(ctx)
    deployment = deploy_vm.Deployment(cfg.state_dir, env)
    modes = [m for m, on in (("--plan", plan_only), ("--status", status), ("--destroy", destroy)) if on]
    if len(modes) > 1:
        raise InvalidInput(f"`{modes[0]}` and `{modes[1]}` cannot be combined; pass one of them.")
    if host and (plan_only or destroy):
        raise InvalidInput(f"`{modes[0]}` is about Azure resources; `--host` configures an existing host only.")
    stderr = console(stderr=True)

    if status:
        result = deploy_vm.status(deployment)
        _render(result, json_)
        return

    if destroy:

        def confirm_destroy(group: str, plan) -> bool:
            _show_plan(plan, destroy=True)
            if yes:
                return True
            import sys

            if not is_terminal(sys.stdin):
                raise InvalidInput(f"Destroying `{group}` needs its name typed at a terminal; pass --yes in scripts.")
            typed = typer.prompt(f"type the resource group's name ({group}) to delete it")
            return typed.strip() == group

        with _Progress() as progress:
            result = deploy_vm.destroy(deployment, confirm=confirm_destroy, progress=progress)
        if result.cancelled:
            stderr.print("not destroyed: the name did not match")
            raise typer.Exit(1)
        _render(result, json_)
        return

    azure = deploy_vm.AzureOptions(
        location=location,
        ssh_key=ssh_key,
        ssh_from=ssh_from,
        mqtt_sources=tuple(mqtt_from or ("0.0.0.0/0",)),
        https_sources=tuple(https_from or ("0.0.0.0/0",)),
        vm_size=vm_size,
        subscription_id=subscription,
    )

    if plan_only:
        deploy_vm.validate_name(env, azure=True)
        with _Progress() as progress:
            _root, plan, _key = deploy_vm.plan(deployment, azure, progress=progress)
        if json_:
            emit_json(plan.as_dict())
        else:
            _show_plan(plan)
        return

    target = None
    operator = ssh_from
    if host:
        target = deploy_vm.HostTarget.parse(host, key_file=ssh_key)
        operator = deploy_vm.operator_cidr_for(target, ssh_from)

    with _Progress() as progress:

        def confirm(plan) -> bool:
            progress.pause()
            _show_plan(plan)
            if yes:
                progress.resume()
                return True
            import sys

            if not is_terminal(sys.stdin):
                raise InvalidInput("The plan has changes and nobody can confirm them here; pass --yes in scripts.")
            answer = typer.confirm("apply this plan?", default=False)
            progress.resume()
            return answer

        result = deploy_vm.deploy(
            deployment,
            azure=azure,
            host=target,
            operator_cidr=operator,
            extravars=_read_extravars(extra_vars),
            confirm=confirm,
            progress=progress,
            on_event=progress.task,
            run_check=not skip_check,
        )
    if result.cancelled:
        stderr.print("nothing applied")
        raise typer.Exit(1)
    _render(result, json_)


def _render(result, json_: bool) -> None:
    data = result.as_dict()
    if json_:
        emit_json(data)
        return
    c = out()
    c.print(f"environment: {data['environment']} ({data['kind']})")
    if data["plan"] is not None:
        counts = data["plan"]["counts"]
        c.print(f"terraform: {'applied' if data['applied'] else 'nothing to apply'} ({counts})")
    if data["playbook"]:
        c.print(f"ansible: {data['playbook']['status']}, {data['playbook']['changed']} changed")
    if data["check"]:
        check = data["check"]
        c.print(f"check: reading from {check['device_id']} seen by the operator and stored ({check['elapsed_s']} s)")
    for name, value in data["endpoints"].items():
        c.print(f"{name}: {value}")
    for name, value in data["credentials"].items():
        c.print(f"{name}: {value}")
    for name, value in data["outputs"].items():
        if not isinstance(value, dict | list):
            c.print(f"output {name}: {value}")
    for unit, state in data["services"].items():
        c.print(f"{unit}: {state}")
