"""`iotctl stack up` and `iotctl device simulate` from the installed wheels, not from the checkout (issue #17 item 7).

The two wheels (``iotctl`` and ``iots6-platform``) are built from this checkout and installed without their
dependencies into a fresh venv; a ``.pth`` file lends it the dependencies of the test's own environment (their
``.pth`` files, among them the editable installs of this checkout, are not processed, so ``iotctl`` and
``iots6_platform`` come from the wheels alone; the first test checks that).

The Docker engine cannot run here: ``FakeDocker`` (a script named ``docker`` first on PATH) answers ``compose
version`` and ``info`` like a working engine and finds no image, which is what a machine without our images looks
like.  The native stack runs for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from iotctl.stack import procs

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

FAKE_DOCKER = """#!{python}
# FakeDocker: a Docker client whose engine is up and holds no image (no Docker engine can run here).
import sys
args = sys.argv[1:]
if args[:2] == ["compose", "version"]:
    print("Docker Compose version v2.29.7")
elif args[:1] == ["info"]:
    print("27.3.1")
elif args[:2] == ["image", "inspect"]:
    print("Error: No such image: " + args[2], file=sys.stderr)
    sys.exit(1)
else:
    print("FakeDocker does not run " + " ".join(args), file=sys.stderr)
    sys.exit(99)
"""


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("from-wheel")
    wheels = tmp / "wheels"
    for source in (ROOT, ROOT / "services"):
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, source],
            check=True,
            capture_output=True,
            timeout=300,
        )
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", *sorted(wheels.glob("*.whl"))],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (site / "zz-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _run(venv: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180):
    return subprocess.run(
        [venv / "bin" / "iotctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": os.environ["PATH"], "NO_COLOR": "1", **(env or {})},
        cwd=venv.parent,
    )


def test_the_wheels_alone_provide_iotctl_and_the_platform(wheel_venv):
    code = (
        "import iotctl, iots6_platform, iotctl.packaged as r; "
        "print(iotctl.__file__, iots6_platform.__file__, r.source_checkout())"
    )
    out = subprocess.check_output([wheel_venv / "bin" / "python", "-c", code], text=True, cwd=wheel_venv.parent).split()
    assert all(path.startswith(str(wheel_venv)) for path in out[:2]), out
    assert out[2] == "None"


def test_docker_stack_from_the_wheel_names_the_missing_prebuilt_image(wheel_venv, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.format(python=sys.executable))
    docker.chmod(0o755)
    state = tmp_path / "state"
    result = _run(
        wheel_venv,
        "--state-dir",
        str(state),
        "stack",
        "up",
        "--docker",
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "IOTCTL_CONFIG": ""},
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Image `iots6/migrate:0.1.0` is not on this machine" in result.stderr
    assert "Traceback" not in result.stderr
    rendered = state / "docker"
    assert "build:" not in (rendered / "compose.yaml").read_text()  # nothing to build from
    assert list((rendered / "grafana" / "dashboards").glob("*.json"))  # Grafana's files came from the wheel


def test_native_stack_from_the_wheel(wheel_venv, tmp_path):
    mqtt, pg, health, config = procs.free_ports(4)
    (tmp_path / "none.toml").write_text("")
    env = {
        "IOTCTL_CONFIG": str(tmp_path / "none.toml"),
        "IOTCTL_STATE_DIR": str(tmp_path / "state"),
        "IOTCTL_MQTT_PORT": str(mqtt),
        "IOTCTL_PG_PORT": str(pg),
        "IOTCTL_INGEST_HEALTH_PORT": str(health),
        "IOTCTL_CONFIG_PORT": str(config),
    }
    try:
        up = _run(wheel_venv, "stack", "up", "--json", env=env)
        assert up.returncode == 0, up.stderr
        report = json.loads(up.stdout)
        states = {name: c["state"] for name, c in report["components"].items()}
        assert states == dict.fromkeys(("mosquitto", "postgres", "ingest", "config-server"), "running"), states
        assert report["endpoints"]["grafana"]["dashboards"].startswith(str(wheel_venv))
        check = _run(wheel_venv, "stack", "status", "--check", env=env)
        assert check.returncode == 0, check.stderr
        # The simulator runs the firmware shipped inside the wheel (iotctl/_firmware), against the real stack.
        sim = _run(
            wheel_venv, "device", "simulate", "--count", "2", "--rate", "2", "--duration", "6", "--json", env=env
        )
        assert sim.returncode == 0, sim.stderr
        summary = json.loads(sim.stdout)
        assert summary["nodes"] == 2 and summary["published"] >= 4 and summary["dropped"] == 0, summary
        fleet = _run(wheel_venv, "device", "fleet", "--json", env=env)
        assert fleet.returncode == 0, fleet.stderr
        assert {row["device_id"] for row in json.loads(fleet.stdout)} >= {"sim-0001", "sim-0002"}, fleet.stdout
    finally:
        down = _run(wheel_venv, "stack", "down", "--reset", "--yes", env=env)
    assert down.returncode == 0, down.stderr
