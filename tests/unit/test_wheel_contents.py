"""The iotctl wheel carries what iotctl finds at run time beside its modules: the firmware that `device flash` puts
on boards and `device simulate` runs (``iotctl/_firmware``, found by iotctl/packaged.py) and the templates
(``iotctl/_templates``, iotctl/render.py), and iotctl finds them there, not in a checkout.

Built as ``pip wheel --no-deps --no-build-isolation`` (hatchling is in the dev extra), then unpacked and imported
ahead of the editable install; installing it into a fresh venv and running the commands is a separate test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (found,) = out.glob("iotctl-*.whl")
    return found


def test_wheel_carries_the_firmware_the_templates_and_grafanas_files(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for source, target in (
            (REPO / "firmware", "iotctl/_firmware"),
            (REPO / "templates", "iotctl/_templates"),
            (REPO / "infra" / "grafana", "iotctl/_grafana"),  # what the Docker stack mounts into Grafana
        ):
            expected = _files(source)
            assert expected, source
            packed = {n[len(target) + 1 :] for n in names if n.startswith(target + "/")}
            assert packed == set(expected), (target, packed ^ set(expected))  # nothing missing, nothing stray
            for name, data in expected.items():
                assert zf.read(f"{target}/{name}") == data, name
    assert "iotctl/simulate/bme280chip.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_unpacked_wheel_finds_its_own_firmware(wheel, tmp_path):
    """The flasher's file list and the simulator's ``import iots6`` come from the wheel's ``_firmware`` (the
    unpacked wheel is first on the path, so its iotctl is imported, with no checkout next to it), and the
    simulator's import leaves ``sys.path`` as it was."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    probe = """
import json, sys
before = list(sys.path)
import iotctl
from iotctl.flash.firmware import local_files
from iotctl.packaged import firmware_dir
from iotctl.simulate import firmware_path
lib = firmware_path()
import iots6.app, iots6.mqttclient
print(json.dumps({"iotctl": iotctl.__file__, "firmware": str(firmware_dir()), "lib": str(lib),
                  "app": iots6.app.__file__, "client": iots6.mqttclient.__file__,
                  "files": [f.path for f in local_files()], "path_unchanged": sys.path == before}))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(site)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    packaged = site / "iotctl" / "_firmware"
    assert Path(seen["iotctl"]).is_relative_to(site), seen
    assert Path(seen["firmware"]) == packaged and Path(seen["lib"]) == packaged / "lib", seen
    assert Path(seen["app"]).is_relative_to(packaged / "lib" / "iots6"), seen
    assert Path(seen["client"]).is_relative_to(packaged / "lib" / "iots6"), seen
    assert "/main.py" in seen["files"] and "/lib/iots6/mqttclient.py" in seen["files"], seen["files"]
    assert seen["path_unchanged"], "importing the firmware changed sys.path"
