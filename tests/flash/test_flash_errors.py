"""Each failure of `iotctl device flash` is one line naming the thing and the fix, with its exit code."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import tty

from typer.testing import CliRunner

from iotctl.cli.main import app


def flash(env, port, *extra):
    args = ["device", "flash", "--device-id", "bench-1", "--no-wait", *extra]
    if port:
        args += ["--port", port]
    return CliRunner().invoke(app, args, env=env, catch_exceptions=False)


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_no_board(site):
    result = flash(site["env"], "/dev/pts/987654")
    assert result.exit_code == 7
    assert "No board at `/dev/pts/987654`" in one_error_line(result)


def test_port_busy(fakeboard, site):
    board = fakeboard()
    holder = subprocess.Popen(  # another program holding the port with an exclusive lock, as mpremote/Thonny do
        [
            sys.executable,
            "-c",
            "import fcntl,os,sys,time\nfd=os.open(sys.argv[1], os.O_RDWR|os.O_NOCTTY)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX|fcntl.LOCK_NB)\nprint('locked', flush=True)\ntime.sleep(60)",
            board.port,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = flash(site["env"], board.port)
    finally:
        holder.kill()
        holder.wait(timeout=5)
        holder.stdout.close()
    assert result.exit_code == 4
    assert "is busy" in one_error_line(result)


def test_not_micropython(site):
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def garbage():  # a serial device that answers everything with noise
        os.set_blocking(master, False)
        while not stop.wait(0.05):
            try:
                os.read(master, 1024)
                os.write(master, b"\x1b[0m?? ERR 0x7f\r\n")
            except (BlockingIOError, OSError):
                pass

    worker = threading.Thread(target=garbage, daemon=True)
    worker.start()
    try:
        result = flash(site["env"], os.ttyname(slave))
    finally:
        stop.set()
        worker.join(timeout=5)
        os.close(master)
        os.close(slave)
    assert result.exit_code == 6
    assert "does not answer as a MicroPython raw REPL" in one_error_line(result)


def test_micropython_too_old(fakeboard, site):
    board = fakeboard("--version", "1.19.1")
    result = flash(site["env"], board.port)
    assert result.exit_code == 3
    assert "runs MicroPython `1.19.1`, older than `1.23.0`" in one_error_line(result)


def test_out_of_flash(fakeboard, site):
    board = fakeboard("--free-kib", "24")
    result = flash(site["env"], board.port)
    assert result.exit_code == 1
    assert "has 24 KiB free" in one_error_line(result)


def test_wifi_missing(site):
    env = {**site["env"], "IOTCTL_WIFI_SSID": "", "IOTCTL_WIFI_PASSWORD_FILE": ""}
    result = flash(env, "/dev/pts/987654")
    assert result.exit_code == 6
    assert "Wi-Fi credentials are missing" in one_error_line(result)


def test_keep_wifi_without_wifi_on_the_board(fakeboard, site):
    board = fakeboard()
    env = {**site["env"], "IOTCTL_WIFI_SSID": "", "IOTCTL_WIFI_PASSWORD_FILE": ""}
    result = flash(env, board.port, "--keep-wifi")
    assert result.exit_code == 6
    assert "has no Wi-Fi credentials to keep" in one_error_line(result)


def test_online_timeout(fakeboard, site):
    board = fakeboard()
    args = ["device", "flash", "--port", board.port, "--device-id", "bench-1", "--online-timeout", "1.5"]
    result = CliRunner().invoke(app, args, env=site["env"], catch_exceptions=False)
    assert result.exit_code == 4
    assert "did not print `iots6: online`" in one_error_line(result)
