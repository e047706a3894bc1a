"""The flows of ``deploy vm``: plan, deploy (Terraform, then Ansible, then the check, then register), status,
destroy."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from iotctl.deploy.vm.steps import (
    check,
    configure,
    playbook_variables,
    ports,
    public_key,
    register,
    run_on_host,
    target_from_outputs,
    terraform_root,
    terraform_variables,
)
from iotctl.deploy.vm.target import (
    KIND,
    SERVICES,
    AzureOptions,
    Deployment,
    HostTarget,
    Progress,
    check_cidr,
    detect_operator_cidr,
    no_progress,
    validate_name,
)
from iotctl.errors import NotFound

# ------------------------------------------------------------------------------------------------ the flows


@dataclass
class DeployResult:
    environment: str
    kind: str = KIND
    target: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] | None = None
    applied: bool = False
    playbook: dict[str, Any] | None = None
    check: dict[str, Any] | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    cancelled: bool = False

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``: paths and counts only, never a secret's value."""
        return asdict(self)


def plan(
    deployment: Deployment, azure: AzureOptions, *, progress: Progress = no_progress, source: Path | None = None
) -> tuple[Any, Any, Path]:
    """Init and plan the Terraform root; returns (root, plan, private key)."""
    key, line = public_key(azure.ssh_key)
    ssh_cidr = check_cidr(azure.ssh_from, "--ssh-from") if azure.ssh_from else None
    if ssh_cidr is None:
        progress("detecting your public address for the SSH rule")
        ssh_cidr = detect_operator_cidr()
    deployment.make()
    root = terraform_root(deployment, terraform_variables(deployment.name, azure, ssh_cidr, line), source=source)
    progress(f"terraform init ({deployment.terraform_dir})")
    root.init()
    progress("terraform plan")
    return root, root.plan(), key


def deploy(
    deployment: Deployment,
    *,
    azure: AzureOptions | None = None,
    host: HostTarget | None = None,
    operator_cidr: str | None = None,
    extravars: Mapping[str, Any] | None = None,
    confirm: Callable[[Any], bool] = lambda _plan: False,
    progress: Progress = no_progress,
    on_event: Callable[[Any], None] | None = None,
    run_check: bool = True,
    source: Path | None = None,
) -> DeployResult:
    """The one-command path: Terraform (unless ``host``), Ansible, the check, the environment."""
    validate_name(deployment.name, azure=host is None)
    result = DeployResult(environment=deployment.name)
    variables_in = dict(extravars or {})
    if host is None:
        azure = azure or AzureOptions()
        root, the_plan, key = plan(deployment, azure, progress=progress, source=source)
        result.plan = the_plan.as_dict()
        operator_cidr = root.variables["ssh_source_cidrs"][0]
        if the_plan.has_changes:
            if not confirm(the_plan):
                result.cancelled = True
                return result
            progress("terraform apply")
            root.apply(the_plan)
            result.applied = True
        else:
            progress("terraform: no changes")
        result.outputs = root.outputs()
        target = target_from_outputs(result.outputs, key)
    else:
        deployment.make()
        target = host
        if operator_cidr:
            operator_cidr = check_cidr(operator_cidr, "--ssh-from")
    variables = playbook_variables(target, operator_cidr, variables_in)
    ports(variables)  # a bad port fails before anything runs
    deployment.save({"target": target.public(), "extravars": variables_in, "operator_cidr": operator_cidr})
    progress(f"ansible: converging {target.user}@{target.address}")
    playbook = configure(deployment, target, variables, on_event=on_event)
    result.playbook = playbook.as_dict()
    result.target = target.public()
    if run_check:
        progress("checking: one reading over TLS into the database")
        result.check = check(deployment, target, variables).as_dict()
    env = register(deployment, target, variables)
    progress(f"registered environment `{env.name}` ({env.file})")
    result.endpoints = {"mqtt": env.broker.url, "config": env.config_url, "database": env.database.url or ""}
    result.credentials = {
        "environment_file": str(env.file),
        "operator_credentials": str(env.home),
        "deployment_secrets": str(deployment.secrets_dir),
        "ca": str(env.ca_file) if env.ca_file else "",
    }
    return result


def status(deployment: Deployment, *, source: Path | None = None) -> DeployResult:
    """Terraform's outputs (when Terraform made the host) and each service's state on the host."""
    record = deployment.record()
    if not record.get("target"):
        raise NotFound(
            f"No VM deployment `{deployment.name}` in `{deployment.home}`; deploy it with "
            f"`iotctl deploy vm --env {deployment.name}`."
        )
    data = dict(record["target"])
    target = HostTarget(
        address=data["address"],
        user=data["user"],
        port=int(data.get("port", 22)),
        key_file=Path(data["key_file"]) if data.get("key_file") else None,
        server_name=data.get("server_name", ""),
    )
    result = DeployResult(environment=deployment.name, target=target.public())
    if (deployment.terraform_dir / "terraform.tfstate").exists():
        root = terraform_root(deployment, source=source)
        root.init()
        result.outputs = root.outputs()
    shell = "systemctl is-active " + " ".join(SERVICES) + " || true"
    out = run_on_host(target.inventory(deployment.known_hosts), ["sh", "-c", shell])
    result.services = dict(zip(SERVICES, out.split(), strict=False))
    return result


def destroy(
    deployment: Deployment,
    *,
    confirm: Callable[[str, Any], bool],
    progress: Progress = no_progress,
    source: Path | None = None,
) -> DeployResult:
    """``terraform plan -destroy`` → ``confirm(resource group, plan)`` → apply; then unregister the environment."""
    from iotctl import environments as envs

    if not (deployment.terraform_dir / "terraform.tfstate").exists():
        raise NotFound(
            f"No Terraform state for `{deployment.name}` in `{deployment.terraform_dir}`; a host configured with "
            "--host is not destroyed by iotctl (remove it with `iotctl env remove`)."
        )
    variables_file = deployment.terraform_dir / "iotctl.tfvars.json"
    variables = json.loads(variables_file.read_text()) if variables_file.exists() else {}
    root = terraform_root(deployment, variables, source=source)
    progress("terraform init")
    root.init()  # stages the module again (this iotctl's copy) and selects this environment's state
    outputs = root.outputs()
    group = str(outputs.get("resource_group_name") or deployment.name)
    progress("terraform plan -destroy")
    the_plan = root.plan(destroy=True)
    result = DeployResult(environment=deployment.name, plan=the_plan.as_dict(), outputs=outputs)
    if not confirm(group, the_plan):
        result.cancelled = True
        return result
    progress(f"terraform apply (destroying `{group}`)")
    root.apply(the_plan)
    result.applied = True
    try:
        envs.remove_environment(deployment.state_dir, deployment.name)
        progress(f"removed environment `{deployment.name}`")
    except NotFound:
        pass
    return result
