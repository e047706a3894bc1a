"""`iotctl device flash | list | logs` driving the real mpremote against a FakeBoard (see conftest.py): a PTY whose
far end is a raw REPL backed by the real MicroPython interpreter."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from mpremote.transport_serial import SerialTransport
from typer.testing import CliRunner

from iotctl.cli.main import app

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
LOCAL_LIB = sorted(
    "/lib/" + p.relative_to(FIRMWARE / "lib").as_posix()
    for p in (FIRMWARE / "lib").rglob("*.py")
    if "__pycache__" not in p.parts
)
SECRETS = ("mqtt-secret-7f3a", "cfg-token-91bc", "wifi-secret-c0ffee")


def run(env, *args):
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


@contextlib.contextmanager
def raw(port):
    """The board through mpremote's own transport, independent of iotctl.flash, to inspect what is on it."""
    transport = SerialTransport(port, timeout=1)
    try:
        transport.enter_raw_repl(soft_reset=False, timeout_overall=5)
        yield transport
    finally:
        transport.exit_raw_repl()
        transport.close()


def board_files(port) -> dict[str, bytes]:
    """Every file on the board's flash (the emulator's /dev and /proc aside) with its content."""
    files: dict[str, bytes] = {}
    with raw(port) as t:

        def walk(path):
            for entry in t.fs_listdir(path):
                child = path.rstrip("/") + "/" + entry.name
                if child in ("/dev", "/proc"):
                    continue
                if entry.st_mode & 0x4000:
                    walk(child)
                else:
                    files[child] = bytes(t.fs_readfile(child))

        walk("/")
    return files


def flash_json(env, port, *extra):
    result = run(env, "device", "flash", "--port", port, "--device-id", "bench-1", "--no-wait", "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_flash_writes_firmware_identity_and_packages_then_reflash_copies_nothing(fakeboard, site):
    board = fakeboard()
    summary = flash_json(site["env"], board.port)
    files = board_files(board.port)

    expected = {"/main.py", "/device.json", *LOCAL_LIB}  # the firmware needs no micropython-lib package
    assert set(files) == expected
    assert files["/main.py"] == (FIRMWARE / "main.py").read_bytes()
    for path in LOCAL_LIB:
        assert files[path] == (FIRMWARE / path.lstrip("/")).read_bytes(), path
    assert sorted(summary["copy"]) == sorted(expected - {"/device.json"})
    assert summary["device_file"] == "write" and summary["micropython"] == "1.27.0"

    device = json.loads(files["/device.json"])
    creds = json.loads(site["creds_file"].read_text())
    assert device == {
        "device_id": "bench-1",
        "broker_host": creds["mqtt_host"],
        "broker_port": creds["mqtt_port"],
        "broker_tls": False,
        "mqtt_username": creds["mqtt_username"],
        "mqtt_password": creds["mqtt_password"],
        "topic_base": "iots6",
        "config_url": creds["config_url"],
        "config_token": creds["config_token"],
        "wifi_ssid": "bench-net",
        "wifi_password": "wifi-secret-c0ffee",
    }
    assert site["creds_file"].stat().st_mode & 0o777 == 0o600

    again = run(site["env"], "device", "flash", "--port", board.port, "--device-id", "bench-1", "--no-wait", "--json")
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    assert second["copy"] == [] and second["remove"] == [] and second["device_file"] == "unchanged"
    assert len(second["unchanged"]) == len(expected) - 1
    assert board_files(board.port) == files
    assert_no_secret(again.output)


def test_human_output_names_files_but_no_secret(fakeboard, site):
    board = fakeboard("--no-raw-paste")  # also: mpremote's fallback to the plain raw REPL
    result = run(site["env"], "device", "flash", "--port", board.port, "--device-id", "bench-1", "--no-wait")
    assert result.exit_code == 0, result.output
    assert "copied /lib/iots6/app.py" in result.stdout
    assert "device file write" in result.stderr
    assert_no_secret(result.output)


def test_compile_makes_loadable_mpy_and_removes_py_twins(fakeboard, site):
    board = fakeboard()
    flash_json(site["env"], board.port)  # first as source, so the .py twins exist
    summary = flash_json(site["env"], board.port, "--compile")
    files = board_files(board.port)

    app_files = {p for p in files if p.startswith("/lib/iots6/")}
    assert app_files == {p[:-3] + ".mpy" for p in LOCAL_LIB}
    assert sorted(summary["remove"]) == LOCAL_LIB
    assert "/main.py" in files and files["/main.py"] == (FIRMWARE / "main.py").read_bytes()
    with raw(board.port) as t:
        out = t.exec(
            "import iots6.contract as c, iots6.backoff as b\n"
            "print(c.__file__, b.__file__)\n"
            "print(c.topic('iots6', 'bench-1', 'telemetry'))\n"
        ).decode()
    first, second = out.strip().splitlines()
    assert first.split() == ["/lib/iots6/contract.mpy", "/lib/iots6/backoff.mpy"]
    assert second == "iots6/bench-1/telemetry"


def test_dry_run_changes_nothing_and_provisions_nobody(fakeboard, site):
    board = fakeboard()
    before = board_files(board.port)
    result = run(site["env"], "device", "flash", "--port", board.port, "--device-id", "new-2", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and plan["provisioned"] is False
    assert "/lib/iots6/app.py" in plan["copy"] and plan["packages_from_cache"] == []
    assert board_files(board.port) == before
    assert not (site["state"] / "devices" / "new-2.json").exists()


def test_device_list_sees_the_flashed_board(fakeboard, site):
    board = fakeboard()
    flash_json(site["env"], board.port)
    result = run(site["env"], "device", "list", "--port", board.port, "--json")
    assert result.exit_code == 0, result.output
    rows = [r for r in json.loads(result.stdout) if r["port"] == board.port]
    assert len(rows) == 1
    row = rows[0]
    assert row["micropython"] == "1.27.0" and row["device_id"] == "bench-1" and row["error"] is None
    assert_no_secret(result.output)


def test_keep_wifi_keeps_the_boards_wifi(fakeboard, site):
    board = fakeboard()
    flash_json(site["env"], board.port)
    env = {**site["env"], "IOTCTL_WIFI_SSID": "", "IOTCTL_WIFI_PASSWORD_FILE": ""}
    summary = flash_json(env, board.port, "--keep-wifi")
    assert summary["copy"] == []
    device = json.loads(board_files(board.port)["/device.json"])
    assert device["wifi_ssid"] == "bench-net" and device["wifi_password"] == "wifi-secret-c0ffee"
    assert device["mqtt_password"] == "mqtt-secret-7f3a"


def test_online_wait_succeeds_on_the_firmware_line(fakeboard, site):
    board = fakeboard("--online-line", "iots6: online bench-1")
    result = run(
        site["env"],
        "device",
        "flash",
        "--port",
        board.port,
        "--device-id",
        "bench-1",
        "--online-timeout",
        "10",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["online"] == "iots6: online bench-1"


def test_logs_follow_the_console(fakeboard, site):
    board = fakeboard("--heartbeat-ms", "100")
    result = run(site["env"], "device", "logs", "--port", board.port, "--lines", "3", "--timeout", "10")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("heartbeat ") for line in lines), lines


def test_local_hashes_match_the_boards(fakeboard, site):
    """The board-side SHA-256 (MicroPython's hashlib) agrees with CPython's on every flashed file."""
    from iotctl.flash.board import Board

    board = fakeboard()
    flash_json(site["env"], board.port)
    with Board.connect(board.port) as b:
        hashes = b.hashes(["/main.py", "/lib", "/device.json"])
    files = board_files(board.port)
    assert hashes == {p: hashlib.sha256(data).hexdigest() for p, data in files.items()}


def test_filesystem_changes_are_idempotent_and_refused_clearly(fakeboard):
    """makedirs/remove (mpremote's fs_mkdir/fs_rmfile) accept what is already done; a directory where a file is,
    or a file that stays, is an OperationFailed naming the path."""
    import pytest

    from iotctl.errors import OperationFailed
    from iotctl.flash.board import Board

    board = fakeboard()
    with Board.connect(board.port) as b:
        b.makedirs(["/lib/a", "/lib", "/lib/a"])
        b.makedirs(["/lib", "/lib/a"])  # already there
        b.write_file("/lib/a/x.py", b"x = 1\n")
        b.write_file("/lib/f", b"")
        assert b.hashes(["/lib"]) == {
            "/lib/a/x.py": hashlib.sha256(b"x = 1\n").hexdigest(),
            "/lib/f": hashlib.sha256(b"").hexdigest(),
        }
        with pytest.raises(OperationFailed, match=r"Changing `/lib/f` on the board"):
            b.makedirs(["/lib/f"])
        b.remove(["/lib/a/x.py", "/lib/gone.py"])  # one there, one already gone
        with pytest.raises(OperationFailed, match=r"Changing `/lib/a` on the board"):
            b.remove(["/lib/a"])  # a directory: fs_rmfile refuses, and it stays
        assert b.hashes(["/lib"]) == {"/lib/f": hashlib.sha256(b"").hexdigest()}
