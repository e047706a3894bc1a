"""Runs each MicroPython test script (tests/firmware/mpy_tests/test_*.py) in the real MicroPython interpreter.

The interpreter is the WebAssembly port from npm (``@micropython/micropython-webassembly-pyscript``, pinned by
tests/firmware/mpy/package-lock.json) run by Node through tests/firmware/mpy/run.mjs.  ``npm ci`` runs
first when node_modules is absent, so a clean clone works.  The OLED frame becomes test-artifacts/oled.png.
"""

import struct
import zlib
from pathlib import Path

import pytest

from .conftest import run_micropython

HERE = Path(__file__).resolve().parent
MPY = HERE / "mpy"
REPO = HERE.parents[1]
ARTIFACTS = REPO / "test-artifacts"
SCRIPTS = sorted(p.name for p in (HERE / "mpy_tests").glob("test_*.py") if p.name != "test_soak.py")


def png_from_vlsb(frame: bytes, width: int = 128, height: int = 64, scale: int = 4) -> bytes:
    """A grayscale PNG of an SSD1306 frame (MONO_VLSB: byte = 8 vertical pixels), lit pixels white."""
    rows = []
    for y in range(height):
        row = bytearray()
        for x in range(width):
            on = frame[(y // 8) * width + x] >> (y % 8) & 1
            row += bytes([255 if on else 0]) * scale
        rows.extend([b"\x00" + bytes(row)] * scale)  # filter byte 0 (None) per scanline

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width * scale, height * scale, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_micropython_script(node, script, tmp_path):
    done = run_micropython(node, HERE / "mpy_tests" / script, "--artifacts", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED " + script in done.stdout, done.stdout
    if script == "test_app.py":  # the console line `iotctl device flash` waits for after connecting
        assert "iots6: online pico-app" in done.stdout, done.stdout
    raw = tmp_path / "oled.raw"
    if raw.exists():
        frame = raw.read_bytes()
        assert len(frame) == 1024
        assert any(frame), "the OLED frame is blank"
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "oled.png").write_bytes(png_from_vlsb(frame))
