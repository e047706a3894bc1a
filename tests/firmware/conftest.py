"""pytest settings and fixtures for the firmware tests."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.missing import missing

MPY = Path(__file__).resolve().parent / "mpy"

# These are MicroPython scripts and fakes, run inside the MicroPython interpreter by test_micropython.py and
# test_config_mirror.py, and the npm folder; pytest must not import them under CPython.
collect_ignore_glob = ["mpy_tests/*", "mpy_checks/*", "fakes/*", "mpy/*"]


@pytest.fixture(scope="session")
def node():
    """Node.js with the pinned MicroPython WebAssembly interpreter installed (``npm ci`` on first use).

    Without Node a developer's run skips these tests; in CI (CI=true) that would hide the firmware from the
    suite, so it fails instead."""
    exe = shutil.which("node")
    if exe is None:
        message = "`node` not found on PATH; install Node.js 20 (apt-get install nodejs npm) to run firmware tests"
        missing(message)
    if not (MPY / "node_modules" / "@micropython" / "micropython-webassembly-pyscript").is_dir():
        npm = shutil.which("npm")
        assert npm, "`npm` not found on PATH; install it (apt-get install npm) to fetch the MicroPython interpreter"
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=MPY, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    return exe


def run_micropython(node: str, script: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``node run.mjs script [args]``: the script in the real MicroPython interpreter (see mpy/run.mjs)."""
    return subprocess.run(
        [node, str(MPY / "run.mjs"), str(script), *args],
        cwd=MPY,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
