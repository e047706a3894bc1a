"""`iotctl deploy vm`'s argument plumbing, against ``FakeTerraform``: a `terraform` on PATH that records its arguments.

FakeTerraform answers `init`, `plan` (exit 2: changes), `show -json`, `apply` and `output -json` with canned data.
It is NOT evidence that a deployment works: it checks only what the CLI asks of Terraform (the var file instead
of `-var`, the saved plan applied, destroy as `plan -destroy` + `apply` without `-force`, nothing applied without a
confirmation) and how the CLI answers. test_vm_terraform.py runs the same steps with the real Terraform;
test_vm_host.py configures a booted Debian for real.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iotctl.cli.main import app

FAKE = r"""
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_TF_LOG"], "a") as log:
    log.write(json.dumps({"args": args, "data_dir": os.environ.get("TF_DATA_DIR", "")}) + "\n")
command = args[0] if args else ""
work = Path(os.environ.get("TF_DATA_DIR", ".")).parent
if command == "version":
    print("Terraform v1.15.0 (FakeTerraform)")
elif command == "plan":
    for arg in args:
        if arg.startswith("-out="):
            Path(arg[5:]).write_text("FakeTerraform plan")
    sys.exit(2)
elif command == "show":
    action = "delete" if "destroy" in args[-1] else "create"
    print(json.dumps({"resource_changes": [
        {"address": "azurerm_resource_group.this", "change": {"actions": [action]}},
        {"address": "azurerm_linux_virtual_machine.this", "change": {"actions": [action]}},
    ]}))
elif command == "apply":
    (work / "terraform.tfstate").write_text("{}")
elif command == "output":
    outputs = {"resource_group_name": "rg-iots6-lab-weu", "fqdn": "iots6-lab-abc123.westeurope.cloudapp.azure.com",
               "admin_username": "iots6admin", "data_disk_lun": 0}
    print(json.dumps({k: {"value": v, "sensitive": False} for k, v in outputs.items()}))
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """FakeTerraform on PATH; returns a function giving the recorded calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "terraform"
    script.write_text(f"#!{sys.executable}\n{FAKE}")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.jsonl"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TF_LOG", str(log))
    monkeypatch.delenv("IOTCTL_TERRAFORM", raising=False)
    monkeypatch.delenv("IOTCTL_ENV", raising=False)
    key = tmp_path / "id_ed25519"
    key.write_text("private\n")
    Path(f"{key}.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBPx0cPbvd1gUy5Gz8GIC0d1hGg4F op\n")

    def calls() -> list[list[str]]:
        return [json.loads(line)["args"] for line in log.read_text().splitlines()]

    calls.key = key
    calls.state = tmp_path / "state"
    return calls


def _run(fake, *args: str):
    env = {"IOTCTL_STATE_DIR": str(fake.state)}
    return CliRunner().invoke(app, ["deploy", "vm", "--env", "lab", "--ssh-key", str(fake.key), *args], env=env)


def test_plan_only_plans_with_a_var_file_and_applies_nothing(fake):
    result = _run(fake, "--plan", "--ssh-from", "198.51.100.7/32", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["create"] == 2
    commands = [c[0] for c in fake()]
    assert commands == ["init", "plan", "show"]
    init, plan, show = fake()
    assert any(a.startswith("-backend-config=") for a in init) and "-input=false" in init
    assert "-detailed-exitcode" in plan and any(a.startswith("-out=") for a in plan)
    var_file = next(a.split("=", 1)[1] for a in plan if a.startswith("-var-file="))
    assert json.loads(Path(var_file).read_text())["ssh_source_cidrs"] == ["198.51.100.7/32"]
    assert not any(a.startswith("-var=") for call in fake() for a in call), "variables never go on a command line"
    assert show[0] == "show" and "-json" in show


def test_changes_are_not_applied_without_a_confirmation(fake):
    result = _run(fake, "--ssh-from", "198.51.100.7/32")
    assert result.exit_code == 6
    assert result.output.strip().splitlines()[-1] == (
        "error: The plan has changes and nobody can confirm them here; pass --yes in scripts."
    )
    assert "apply" not in [c[0] for c in fake()]
    assert "create: azurerm_resource_group.this" in result.output  # the plan was shown first


def test_destroy_needs_the_name_typed_or_yes_and_never_passes_force(fake):
    work = fake.state / "deploy" / "vm" / "lab" / "terraform"
    missing = _run(fake, "--destroy", "--yes")
    assert missing.exit_code == 7 and "No Terraform state for `lab`" in missing.output
    work.mkdir(parents=True)
    (work / "terraform.tfstate").write_text("{}")

    refused = _run(fake, "--destroy")
    assert refused.exit_code == 6
    assert refused.output.strip().splitlines()[-1] == (
        "error: Destroying `rg-iots6-lab-weu` needs its name typed at a terminal; pass --yes in scripts."
    )
    assert "apply" not in [c[0] for c in fake()]

    done = _run(fake, "--destroy", "--yes", "--json")
    assert done.exit_code == 0, done.output
    plan = [c for c in fake() if c[0] == "plan"][-1]
    apply = [c for c in fake() if c[0] == "apply"][-1]
    assert "-destroy" in plan
    assert apply[-1].endswith("destroy.tfplan") and "-auto-approve" in apply
    assert not any("-force" in a for call in fake() for a in call)
    assert json.loads(done.stdout)["applied"] is True


def test_undetectable_address_is_one_line_naming_the_flag(fake, monkeypatch):
    monkeypatch.setenv("IOTCTL_IP_ECHO_URL", "http://127.0.0.1:9/")
    result = _run(fake, "--plan")
    assert result.exit_code == 4
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: Could not detect your public address") and line.endswith(
        "pass --ssh-from CIDR (e.g. --ssh-from 203.0.113.7/32)."
    )
    assert fake() == [], "nothing ran before the address was known"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plan", "--status"], "error: `--plan` and `--status` cannot be combined; pass one of them."),
        (["--plan", "--host", "root@203.0.113.7"], "error: `--plan` is about Azure resources"),
        (["--host", "203.0.113.7", "--ssh-from", "1.2.3.4/32"], "error: `--host 203.0.113.7` is not USER@ADDRESS"),
        (["--ssh-from", "everywhere"], "error: `everywhere` is not a CIDR for --ssh-from"),
        (["--host", "pi@192.168.1.20"], "error: `--host 192.168.1.20` is a private address"),
    ],
)
def test_bad_input_is_one_sentence(fake, args, message):
    result = _run(fake, *args)
    assert result.exit_code == 6, result.output
    assert result.output.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.output


def test_status_without_a_deployment_says_how_to_make_one(fake):
    result = _run(fake, "--status")
    assert result.exit_code == 7
    assert "deploy it with `iotctl deploy vm --env lab`" in result.output
