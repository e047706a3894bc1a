"""Fixtures for the flash tests: a FakeBoard (tests/flash/fakeboard.mjs) on a pseudo-terminal.

The serial link and USB are the fake: the test makes a PTY pair, the CLI opens the slave path (`/dev/pts/N`) with the
real `mpremote`, and fakeboard.mjs holds the master end, speaking MicroPython's raw-REPL protocol and running
every line of Python it receives in the real MicroPython interpreter (WebAssembly port, the install pinned by
tests/firmware/mpy/package-lock.json). The board's flash is that interpreter's in-memory filesystem.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tty
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.missing import missing

HERE = Path(__file__).resolve().parent
MPY = HERE.parent / "firmware" / "mpy"


@pytest.fixture(scope="session")
def node() -> str:
    exe = shutil.which("node")
    if exe is None:
        missing("`node` not found on PATH; install Node.js 20 (apt-get install nodejs npm) to run flash tests")
    if not (MPY / "node_modules" / "@micropython" / "micropython-webassembly-pyscript").is_dir():
        npm = shutil.which("npm")
        assert npm, "`npm` not found on PATH; install it (apt-get install npm) to fetch the MicroPython interpreter"
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=MPY, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    return exe


class FakeBoardProcess:
    """One FakeBoard: ``port`` is the PTY slave path to give to the CLI."""

    def __init__(self, node: str, args: list[str]) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # like a USB CDC port: no echo, no line editing, before pyserial configures it
        self.port = os.ttyname(self.slave)
        self.proc = subprocess.Popen(
            [node, str(HERE / "fakeboard.mjs"), "--fd", str(self.master), *args],
            pass_fds=(self.master,),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = self.proc.stdout.readline()
        assert ready.strip() == "ready", ready + self.proc.stderr.read()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def fakeboard(node):
    """Factory: ``fakeboard(*args)`` starts a FakeBoard with fakeboard.mjs options; all are stopped at the end."""
    boards: list[FakeBoardProcess] = []

    def start(*args: str) -> FakeBoardProcess:
        board = FakeBoardProcess(node, list(args))
        boards.append(board)
        return board

    yield start
    for board in boards:
        board.stop()


@pytest.fixture
def site(tmp_path):
    """A state dir where device `bench-1` was provisioned earlier (its 0600 credentials file, as `iotctl device
    provision` writes it; provisioning itself is tested in tests/integration/test_provision.py), a Wi-Fi password
    file, a mip cache, and the env for the CLI."""
    from iotctl.devices import DeviceCredentials
    from iotctl.secretfiles import write_secret
    from iotctl.stack.layout import StackLayout

    state = tmp_path / "state"
    creds = DeviceCredentials(
        device_id="bench-1",
        mqtt_host="192.0.2.10",
        mqtt_port=18830,
        mqtt_username="bench-1",
        mqtt_password="mqtt-secret-7f3a",
        topic_base="iots6",
        config_url="http://192.0.2.10:18080",
        config_token="cfg-token-91bc",
        provisioned_at="2025-01-01T00:00:00+00:00",
    )
    creds_file = write_secret(StackLayout(state).device_file("bench-1"), json.dumps(asdict(creds)))
    wifi = write_secret(tmp_path / "wifi.pw", "wifi-secret-c0ffee\n")
    cache = tmp_path / "mip-cache" / "umqtt"
    cache.mkdir(parents=True)
    # A stand-in for micropython-lib's umqtt.simple (not reachable from here): only its presence is tested.
    (cache / "simple.py").write_text("class MQTTClient:\n    pass\n")
    (tmp_path / "iotctl.toml").write_text("")
    env = {
        "IOTCTL_STATE_DIR": str(state),
        "IOTCTL_CONFIG": str(tmp_path / "iotctl.toml"),
        "IOTCTL_WIFI_SSID": "bench-net",
        "IOTCTL_WIFI_PASSWORD_FILE": str(wifi),
        "IOTCTL_MIP_CACHE": str(tmp_path / "mip-cache"),
        "NO_COLOR": "1",
    }
    return {"env": env, "creds": creds, "creds_file": creds_file, "state": state, "tmp": tmp_path}
