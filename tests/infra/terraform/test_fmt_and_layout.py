"""Formatting and module conventions of infra/terraform (Azure Verified Modules / terraform-aws-modules style)."""

from __future__ import annotations

import re

import pytest

from .conftest import MODULES, ROOTS, TF_ROOT, blocks, parse_hcl, scalar

ALL_DIRS = {f"modules/{m.name}": m for m in MODULES} | ROOTS


def test_fmt_check_recursive(terraform):
    result = terraform("fmt", "-check", "-recursive", "-diff", str(TF_ROOT), cwd=TF_ROOT)
    assert result.returncode == 0, f"run `terraform fmt -recursive infra/terraform`:\n{result.output}"


@pytest.mark.parametrize("name", sorted(ALL_DIRS))
def test_standard_files_present(name):
    directory = ALL_DIRS[name]
    for required in ("terraform.tf", "variables.tf", "main.tf", "outputs.tf", "locals.tf"):
        assert (directory / required).is_file(), f"{name} lacks {required}"
    if name.startswith("modules/"):
        assert list((directory / "tests").glob("*.tftest.hcl")), f"{name} has no terraform test"
    else:
        assert (directory / "providers.tf").is_file(), f"{name} lacks providers.tf"


@pytest.mark.parametrize("name", sorted(ALL_DIRS))
def test_variables_and_outputs_are_typed_and_described(name):
    for block in blocks(ALL_DIRS[name]):
        if block.kind == "variable":
            assert "type" in block.body, f"{name}: variable {block.name} has no type"
            assert len(scalar(block.body.get("description", ""))) > 10, f"{name}: variable {block.name} undescribed"
        if block.kind == "output":
            assert len(scalar(block.body.get("description", ""))) > 10, f"{name}: output {block.name} undescribed"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_modules_are_provider_free(module):
    """Provider blocks only in roots; the logic modules need no provider at all, so `terraform test` runs them."""
    for path in module.glob("*.tf"):
        doc = parse_hcl(path)
        assert "provider" not in doc, f"{path} configures a provider"
        assert not any(k in doc for k in ("resource", "data", "ephemeral")), f"{path} declares resources/data"
        for terraform_block in doc.get("terraform", []):
            assert "required_providers" not in terraform_block, f"{path} requires a provider"


@pytest.mark.parametrize("name", sorted(ROOTS))
def test_primary_resource_named_this_and_no_hard_coded_names(name):
    resources = [b for b in blocks(ROOTS[name]) if b.kind == "resource"]
    assert any(b.name == "this" for b in resources), f"{name} has no primary resource named `this`"
    for block in resources:
        name_attr = scalar(block.body.get("name", "${}"))
        # Names come from modules/naming (local.names…) or are fixed by Azure (association names, well-known
        # zone names, node pool names, secret names from docs/decisions.md §6); never a free-typed resource name.
        if isinstance(name_attr, str) and "${" not in name_attr:
            assert name_attr in FIXED_NAMES, f"{name}: {block.address} has the hard-coded name {name_attr!r}"


FIXED_NAMES = {
    "primary",  # NIC ip_configuration (not a resource name, but harmless)
    "user",  # AKS node pool: Azure's 12-character pool name
    "configurationAccessEndpoint",  # the name Azure requires for the DCE association
    "ContainerInsightsExtension",  # the name Azure's Container Insights onboarding uses
    "privatelink.vaultcore.azure.net",  # Azure's private DNS zone for Key Vault
    "azure.extensions",  # PostgreSQL server parameters
    "shared_preload_libraries",
}


@pytest.mark.parametrize("name", sorted(ROOTS))
def test_tfvars_example_matches_the_variables(name):
    directory = ROOTS[name]
    variables = {b.name: b.body for b in blocks(directory) if b.kind == "variable"}
    example = (directory / "terraform.tfvars.example").read_text()
    set_keys = set(re.findall(r"^([a-z_]+)\s*=", example, re.MULTILINE))
    mentioned = set(re.findall(r"^#?\s*([a-z_]+)\s*=", example, re.MULTILINE))
    unknown = set_keys - set(variables)
    assert not unknown, f"{name}/terraform.tfvars.example sets undeclared variables {unknown}"
    required = {v for v, body in variables.items() if "default" not in body}
    # Required variables come from the example, or (environment root) from environments/*.tfvars and the
    # platform's outputs (platform.auto.tfvars.json), which the example describes.
    provided_elsewhere = {"environment", "platform"} if name == "aks/environment" else set()
    missing = required - set_keys - provided_elsewhere
    assert not missing, f"{name}/terraform.tfvars.example lacks required variables {missing}"
    assert provided_elsewhere <= mentioned | set(), f"{name}: the example should describe {provided_elsewhere}"
    undocumented = set(variables) - mentioned - provided_elsewhere
    assert not undocumented, f"{name}/terraform.tfvars.example does not mention {undocumented}"
