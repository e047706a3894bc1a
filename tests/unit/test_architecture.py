"""The import rules docs/architecture.md states, checked on every import statement of every module (including
the ones inside functions): nothing points upwards."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ROOT / "services" / "iots6_platform"
CLI = ROOT / "iotctl"
# What the shared domain may import besides the standard library and itself.
CORE_THIRD_PARTY = {"psycopg", "pydantic", "pydantic_settings"}


def _module_name(path: Path) -> str:
    base = ROOT / "services" if path.is_relative_to(PLATFORM) else ROOT
    parts = path.relative_to(base).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _modules(root: Path) -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


PLATFORM_MODULES = _modules(PLATFORM)
CLI_MODULES = _modules(CLI)


def test_the_walk_found_the_modules():
    assert "iots6_platform.core.contract" in PLATFORM_MODULES and "iots6_platform.ingest.service" in PLATFORM_MODULES
    assert "iotctl.cli.main" in CLI_MODULES and "iotctl.stack" in CLI_MODULES
    assert "iots6_platform.core.contract" in CLI_MODULES["iotctl.tail"]


@pytest.mark.parametrize("module", sorted(PLATFORM_MODULES))
def test_the_platform_never_imports_the_cli(module):
    upward = {m for m in PLATFORM_MODULES[module] if _under(m, "iotctl") or m.split(".")[0] in ("typer", "rich")}
    assert not upward, f"{module} imports {sorted(upward)}"


@pytest.mark.parametrize("module", sorted(m for m in PLATFORM_MODULES if _under(m, "iots6_platform.core")))
def test_the_core_imports_only_the_standard_library_and_its_own(module):
    outside = {
        m
        for m in PLATFORM_MODULES[module]
        if not _under(m, "iots6_platform.core")
        and m.split(".")[0] not in sys.stdlib_module_names
        and m.split(".")[0] not in CORE_THIRD_PARTY
        and m != "iots6_platform"
    }
    assert not outside, f"{module} imports {sorted(outside)}"


@pytest.mark.parametrize(("service", "other"), [("ingest", "config_server"), ("config_server", "ingest")])
def test_the_services_never_import_each_other(service, other):
    for module, imports in PLATFORM_MODULES.items():
        if _under(module, f"iots6_platform.{service}"):
            crossing = {m for m in imports if _under(m, f"iots6_platform.{other}")}
            assert not crossing, f"{module} imports {sorted(crossing)}"


@pytest.mark.parametrize("module", sorted(m for m in CLI_MODULES if not _under(m, "iotctl.cli")))
def test_only_the_cli_layer_imports_typer_rich_or_the_commands(module):
    upward = {
        m for m in CLI_MODULES[module] if m.split(".")[0] in ("typer", "rich", "click") or _under(m, "iotctl.cli")
    }
    assert not upward, f"{module} (library layer) imports {sorted(upward)}"


@pytest.mark.parametrize("module", ["iotctl.endpoints", "iotctl.stack.base"])
def test_the_lowest_modules_import_nothing_above_them(module):
    """The endpoint values import nothing of iotctl; the stack interface only the errors."""
    allowed = {"iotctl.endpoints": set(), "iotctl.stack.base": {"iotctl.errors"}}[module]
    own = {m for m in CLI_MODULES[module] if _under(m, "iotctl")}
    assert {m for m in own if not any(_under(m, a) for a in allowed)} == set(), f"{module} imports {sorted(own)}"
