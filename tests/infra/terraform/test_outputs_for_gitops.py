"""Every value the GitOps objects hand the chart from Terraform exists as an output of the root the docs name.

One table says where each Application parameter comes from: docs/deploy-aks.md, "What the chart expects from
Terraform" (ApplicationSet element key -> Terraform output and root -> chart value). It is read here and checked
against what really uses or provides those names, all parsed statically (the roots cannot be planned here):

- the Application template (infra/argocd/files/application-template.yaml): which element key feeds which chart
  value, and that every parameter is in the table;
- the ApplicationSet's values schema and values.yaml comment, which name the same keys and outputs;
- the chart's values.yaml: the chart value exists;
- the roots' outputs.tf: the output exists (for `postgres.host`, the `postgres` object has a `host` key);
- the platform's `environment_inputs` output and the environment root's `platform` variable: the same keys, so
  the platform's output can be handed over as it is.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from .conftest import REPO, TF_ROOT, blocks, scalar

DOC = REPO / "docs" / "deploy-aks.md"
ARGOCD = REPO / "infra" / "argocd"
CHART = REPO / "infra" / "helm" / "iots6"
ROOTS = {"platform": TF_ROOT / "aks" / "platform", "environment": TF_ROOT / "aks" / "environment"}
#: Element keys that do not come from Terraform, with where they come from instead.
NOT_FROM_TERRAFORM = {"configServerHost": "your DNS zone"}
#: Element keys that are not chart parameters (they steer the Application itself).
APPLICATION_KEYS = {"name", "autoSync", "revision"}


def doc_table() -> dict[str, tuple[str | None, str | None, str]]:
    """element key -> (output, root, chart value) from the doc's table; output/root None when not Terraform's."""
    text = DOC.read_text()
    section = text[text.index("## What the chart expects from Terraform") :]
    section = section[: section.index("\n## ", 3)]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        key, source, value = cells
        output = re.fullmatch(r"`([a-z_.]+)` \((platform|environment)\b[^)]*\)", source)
        rows[key.strip("`")] = (
            output.group(1) if output else None,
            output.group(2) if output else None,
            value.strip("`"),
        )
        if not output:
            assert key.strip("`") in NOT_FROM_TERRAFORM, f"doc row {key}: source {source!r} is no Terraform output"
    assert rows, "the table of docs/deploy-aks.md, What the chart expects from Terraform, was not found"
    return rows


def template_parameters() -> dict[str, str]:
    """element key -> chart value, from the Application template's Helm parameters."""
    template = yaml.safe_load((ARGOCD / "files" / "application-template.yaml").read_text())
    out = {}
    for parameter in template["spec"]["source"]["helm"]["parameters"]:
        key = re.fullmatch(r"\{\{ \.(\w+) \}\}", parameter["value"])
        assert key, f"parameter {parameter['name']} is not fed by one element key: {parameter['value']}"
        out[key.group(1)] = parameter["name"]
    return out


def outputs(root: str) -> dict[str, set[str]]:
    """output name -> keys of its object value (empty for a scalar), parsed from the root's outputs.tf."""
    found = {}
    for block in blocks(ROOTS[root]):
        if block.kind != "output":
            continue
        value = block.body["value"]
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, dict):
            found[block.name] = set(value)
        else:  # an object inside an expression, e.g. `cond ? {host = …} : null`, as hcl2 renders it
            found[block.name] = set(re.findall(r"'(\w+)': ", str(value)))
    return found


def test_every_chart_parameter_is_in_the_table_with_its_chart_value():
    table, parameters = doc_table(), template_parameters()
    assert set(parameters) == set(table), "the doc's table and the Application template name different keys"
    for key, (_output, _root, value) in table.items():
        assert parameters[key] == value, f"{key} feeds `{parameters[key]}` in the template, `{value}` in the doc"


@pytest.mark.parametrize("key", sorted(doc_table()))
def test_each_value_exists_in_terraform_and_in_the_chart(key):
    output, root, value = doc_table()[key]
    if output is not None:
        name, _, field = output.partition(".")
        available = outputs(root)
        assert name in available, f"{key}: `{name}` is not an output of infra/terraform/aks/{root} (outputs.tf)"
        if field:
            assert field in available[name], f"{key}: output `{name}` of aks/{root} has no `{field}`"
    node = yaml.safe_load((CHART / "values.yaml").read_text())
    for part in value.split("."):
        assert isinstance(node, dict) and part in node, f"{key}: the chart has no value `{value}`"
        node = node[part]
    schema = json.loads((CHART / "values.schema.json").read_text())
    for part in value.split("."):
        schema = schema["properties"][part]


def test_the_gitops_values_name_the_same_keys_and_outputs():
    table = doc_table()
    schema = json.loads((ARGOCD / "values.schema.json").read_text())
    element = schema["properties"]["environments"]["items"]
    assert set(element["properties"]) - APPLICATION_KEYS == set(table)
    assert set(element["required"]) >= set(table)
    # values.yaml documents each key with its output: "#   keyVaultUri   key_vault_uri   (environment root)".
    comments = {}
    for line in (ARGOCD / "values.yaml").read_text().splitlines():
        m = re.fullmatch(r"#\s+(\w+)\s+([a-z_.]+)\s+\((platform|environment) root\b.*\)", line)
        if m:
            comments[m.group(1)] = (m.group(2), m.group(3))
    assert comments == {k: (o, r) for k, (o, r, _v) in table.items() if o is not None}


def test_the_platform_hands_the_environment_root_exactly_what_it_takes():
    (inputs,) = [b for b in blocks(ROOTS["platform"]) if b.kind == "output" and b.name == "environment_inputs"]
    (platform,) = [b for b in blocks(ROOTS["environment"]) if b.kind == "variable" and b.name == "platform"]
    given = set(re.findall(r"'(\w+)': ", str(scalar(inputs.body["value"]))))
    taken = set(re.findall(r"'(\w+)': ", str(scalar(platform.body["type"]))))
    assert given and given == taken, f"only given: {given - taken}; only taken: {taken - given}"
    # The two values the chart needs per environment beyond the outputs above travel this way.
    assert {"postgres_subnet_cidr", "monitor_workspace_id", "oidc_issuer_url"} <= given
