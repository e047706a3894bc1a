"""FakeTerraform: a recording stand-in for the `terraform` program, for the argument plumbing of `deploy aks`.

The azurerm provider cannot be downloaded here, so the real AKS roots cannot be planned. This executable (a Python
script named ``terraform``, passed to iotctl through ``IOTCTL_TERRAFORM``) records every call — argv, working
directory, ``TF_DATA_DIR`` and the content of each ``-var-file`` — and answers like Terraform would for the calls
iotctl makes: ``init``; ``plan -out=… -detailed-exitcode [-destroy]`` (exit 2 with the configured changes until the
root is applied); ``show -json <plan>``; ``apply <plan>``; ``output -json`` (the configured outputs once applied).

It is **not evidence that the deployment works**: it shows which commands iotctl runs, in which order, with which
variables, and what it does with the answers. The real Terraform runs the same orchestration on a provider-free
module tree in tests/infra/deploy/test_aks_orchestration.py.

Each root is configured by name (``platform``; ``environment:<env>``) with ``changes`` (addresses to create),
``outputs`` (name -> value; ``{"sensitive": true, "value": …}`` for a sensitive one) and optional ``fail`` (command ->
stderr, exit 1).
"""

from __future__ import annotations

import json
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = r"""
import json, os, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
config = json.loads((HERE / "config.json").read_text())
state_file = HERE / "state.json"
state = json.loads(state_file.read_text()) if state_file.exists() else {}
argv = sys.argv[1:]
data_dir = os.environ.get("TF_DATA_DIR", "")
cwd = os.getcwd()
root = "platform" if cwd.endswith("aks/platform") else "environment"
if root == "environment":
    parts = Path(data_dir).parts
    root = "environment:" + (parts[parts.index("env") + 1] if "env" in parts else "?")
var_files = {}
for arg in argv:
    if arg.startswith("-var-file="):
        path = arg.split("=", 1)[1]
        if not os.path.exists(path):
            sys.stderr.write(f"Error: Failed to read variables file\n\nGiven variables file {path} does not exist.\n")
            sys.exit(1)
        var_files[path] = Path(path).read_text()
with open(HERE / "calls.jsonl", "a") as fh:
    call = {"argv": argv, "cwd": cwd, "root": root, "tf_data_dir": data_dir, "var_files": var_files}
    fh.write(json.dumps(call) + "\n")
spec = config.get(root, {})
command = argv[0] if argv else ""
if command in spec.get("fail", {}):
    sys.stderr.write(spec["fail"][command] + "\n")
    sys.exit(1)
applied = state.get(data_dir) == "applied"
if command == "init":
    print("Terraform has been successfully initialized!")
    sys.exit(0)
if command == "plan":
    out = next(a.split("=", 1)[1] for a in argv if a.startswith("-out="))
    destroy = "-destroy" in argv
    action = "delete" if destroy else "create"
    due = applied if destroy else not applied
    changes = [{"address": a, "change": {"actions": [action]}} for a in spec.get("changes", [])] if due else []
    Path(out).write_text(json.dumps({"destroy": destroy, "resource_changes": changes}))
    sys.exit(2 if changes else 0)
if command == "show":
    print(Path(argv[-1]).read_text())
    sys.exit(0)
if command == "apply":
    plan = json.loads(Path(next(a for a in argv if a.endswith(".tfplan"))).read_text())
    state[data_dir] = "destroyed" if plan["destroy"] else "applied"
    state_file.write_text(json.dumps(state))
    print("Apply complete!")
    sys.exit(0)
if command == "output":
    outputs = spec.get("outputs", {}) if applied else {}
    shaped = {}
    for name, value in outputs.items():
        if isinstance(value, dict) and value.get("sensitive") is True:
            shaped[name] = {"sensitive": True, "value": value["value"], "type": "string"}
        else:
            shaped[name] = {"sensitive": False, "value": value, "type": "string"}
    print(json.dumps(shaped))
    sys.exit(0)
sys.stderr.write(f"Error: FakeTerraform does not know `{command}`\n")
sys.exit(1)
"""


@dataclass
class FakeTerraform:
    directory: Path

    @property
    def binary(self) -> Path:
        return self.directory / "terraform"

    def configure(self, config: dict[str, Any]) -> None:
        (self.directory / "config.json").write_text(json.dumps(config))

    def calls(self) -> list[dict[str, Any]]:
        path = self.directory / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def commands(self) -> list[tuple[str, str]]:
        """(root, command) of every call, in order."""
        return [(c["root"], c["argv"][0]) for c in self.calls()]


def write_fake_terraform(directory: Path, config: dict[str, Any]) -> FakeTerraform:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "terraform"
    script.write_text(
        f"#!{sys.executable} -IS\n# FakeTerraform (tests/aks/fake_terraform.py): records calls.\n{SCRIPT}"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    fake = FakeTerraform(directory)
    fake.configure(config)
    return fake
