"""infra/ansible passes ansible-lint's production profile (strict: warnings fail too) and a syntax check.

The tasks behind `iots6_grafana_enabled` and `iots6_postgresql_timescaledb_enabled` cannot run here (their apt
repositories are unreachable), so this is where they are checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ANSIBLE_DIR = Path(__file__).resolve().parents[3] / "infra" / "ansible"
BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}


@pytest.mark.slow
def test_ansible_lint_production_profile_is_clean():
    proc = subprocess.run(
        [str(BIN / "ansible-lint"), "--nocolor"],
        cwd=ANSIBLE_DIR,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Profile 'production'" in proc.stderr or "production" in proc.stdout + proc.stderr


def test_playbook_syntax_check():
    inventory = "iots6:\n  hosts:\n    vm:\n      ansible_connection: local\n"
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", "/dev/stdin", "site.yml"],
        cwd=ANSIBLE_DIR,
        env=_env(),
        input=inventory,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
