"""iotctl.deploy.terraform against a real Terraform, on a root module that needs no provider download.

This proves the runner's plumbing (init with a per-environment state and data dir, plan with a 0600 var file, the
plan summary, apply of the saved plan, outputs, destroy as `plan -destroy` + apply). It says nothing about the
Azure modules, which need the azurerm provider (see docs/deploy-vm.md for what is verified here).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from iotctl.deploy.terraform import TerraformRoot, _classify, find_terraform
from iotctl.errors import AuthRefused, MissingDependency, OperationFailed, Unreachable

MODULE = Path(__file__).parent / "builtin_module"


@pytest.fixture
def source(tmp_path) -> Path:
    """A module tree like infra/terraform: the root `demo` beside nothing else."""
    tree = tmp_path / "terraform"
    shutil.copytree(MODULE, tree / "demo")
    return tree


def test_plan_apply_outputs_replan_and_destroy(source, tmp_path, terraform_bin):
    root = TerraformRoot(
        source, "demo", tmp_path / "envs" / "dev", variables={"name": "dev"}, binary=str(terraform_bin)
    )
    root.init()
    plan = root.plan()
    assert [c.as_dict() for c in plan.changes] == [{"address": "terraform_data.this", "action": "create"}]
    assert (tmp_path / "envs" / "dev" / "iotctl.tfvars.json").stat().st_mode & 0o777 == 0o600
    root.apply(plan)
    assert root.outputs() == {"greeting": "hello dev", "token": None}  # sensitive outputs are never returned
    assert not root.plan().has_changes, "a re-run with nothing changed plans nothing"
    # State and .terraform live under the environment's directory, not in the module (two envs never share them).
    assert (tmp_path / "envs" / "dev" / "terraform.tfstate").exists()
    assert sorted(p.name for p in (source / "demo").iterdir()) == ["main.tf"], "the source tree is never written to"

    prod = TerraformRoot(
        source, "demo", tmp_path / "envs" / "prod", variables={"name": "prod"}, binary=str(terraform_bin)
    )
    prod.init()
    assert prod.plan().counts()["create"] == 1, "prod has its own state: dev's resource is not prod's"

    root.variables = {"name": "dev2"}
    assert root.plan().counts() == {"create": 0, "update": 1, "replace": 0, "delete": 0}
    gone = root.plan(destroy=True)
    assert gone.destroy and [c.action for c in gone.changes] == ["delete"]
    root.apply(gone)
    assert root.outputs() == {}


def test_a_broken_module_is_one_sentence_with_terraforms_first_error(source, tmp_path, terraform_bin):
    (source / "demo" / "broken.tf").write_text('output "x" {\n  value = terraform_data.missing.id\n}\n')
    root = TerraformRoot(source, "demo", tmp_path / "env", variables={"name": "x"}, binary=str(terraform_bin))
    root.init()
    with pytest.raises(
        OperationFailed, match=r"^`terraform plan` failed in `.*`: Reference to undeclared resource; fix"
    ):
        root.plan()


def test_missing_terraform_names_the_fix(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("IOTCTL_TERRAFORM", raising=False)
    with pytest.raises(MissingDependency, match=r"`terraform` not found; install Terraform"):
        find_terraform()


def test_azure_login_and_registry_failures_are_told_apart():
    # The first lines of what the azurerm provider and `terraform init` print in these cases.
    login = "Error: building AzureRM Client: please ensure you have installed Azure CLI version 2.0.79 or newer."
    assert isinstance(_classify("plan", Path("/x/vm"), login), AuthRefused)
    registry = (
        "Error: Failed to query available provider packages\n\nCould not retrieve the list of available versions "
        "for provider hashicorp/azurerm: could not connect to registry.terraform.io: Failed to request discovery"
    )
    err = _classify("init", Path("/x/vm"), registry)
    assert isinstance(err, Unreachable) and "provider mirror" in str(err)
