"""Planning and running a flash: identity file, firmware files (only those whose hash differs), packages,
soft reset, then waiting for the firmware's online line on the console."""

from __future__ import annotations

import json
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from iotctl.errors import InvalidInput, OperationFailed
from iotctl.flash import firmware
from iotctl.flash.board import Board
from iotctl.flash.errors import NotOnline, OutOfFlash, WifiMissing
from iotctl.packaged import firmware_dir as shipped_firmware

#: What the firmware prints on its console once its MQTT session is up. The firmware must print a line containing
#: it (see firmware/lib/iots6/app.py); `flash` waits for it unless --no-wait.
ONLINE_MARKER = "iots6: online"
#: Room kept free beyond the files themselves (filesystem metadata, the offline buffer's first lines).
FLASH_MARGIN_BYTES = 16 * 1024
DEVICE_FILE = "/device.json"
#: The environment's CA on the board (firmware/lib/iots6/app.py reads it to verify the broker over TLS).
CA_FILE = "/ca.crt"  # PEM; the firmware reads it first (iots6.net.load_ca)
LEGACY_CA_FILE = "/ca.json"  # firmware 0.1's DER-as-hex form: removed when /ca.crt is written

#: progress(step, done, total): step is a short label; done/total count bytes or items.
Progress = Callable[[str, int, int], None]


@dataclass
class FlashRequest:
    port: str
    device_id: str
    wifi_ssid: str | None = None
    wifi_password_file: Path | None = None
    keep_wifi: bool = False
    compile_: bool = False
    dry_run: bool = False
    mip_cache: Path | None = None
    wait_online: bool = True
    online_timeout: float = 60.0
    firmware_dir: Path = field(default_factory=shipped_firmware)  # inside the wheel, or the checkout's firmware/


def _wifi(request: FlashRequest) -> tuple[str, str] | None:
    """(ssid, password) from the request, None when the board's are to be kept; WifiMissing otherwise."""
    if request.wifi_ssid and request.wifi_password_file:
        try:
            password = request.wifi_password_file.read_text().strip()
        except OSError:
            raise InvalidInput(
                f"Wi-Fi password file `{request.wifi_password_file}` cannot be read; create it "
                "(mode 0600, the password on one line) or fix --wifi-password-file."
            ) from None
        if not password:
            raise InvalidInput(
                f"Wi-Fi password file `{request.wifi_password_file}` is empty; write the password into it."
            )
        return request.wifi_ssid, password
    if request.wifi_ssid or request.wifi_password_file:
        raise WifiMissing(
            "Wi-Fi needs both `--wifi-ssid` and `--wifi-password-file` (or IOTCTL_WIFI_SSID and "
            "IOTCTL_WIFI_PASSWORD_FILE); pass the missing one."
        )
    if request.keep_wifi:
        return None
    raise WifiMissing(
        "Wi-Fi credentials are missing; pass --wifi-ssid and --wifi-password-file (or set "
        "IOTCTL_WIFI_SSID and IOTCTL_WIFI_PASSWORD_FILE), or --keep-wifi to keep the board's."
    )


def device_file_content(creds, wifi: tuple[str, str] | None) -> dict:
    """The per-device file (see firmware/README.md) from provisioned credentials and Wi-Fi."""
    content = {
        "device_id": creds.device_id,
        "broker_host": creds.mqtt_host,
        "broker_port": creds.mqtt_port,
        "broker_tls": creds.mqtt_tls,
        "mqtt_username": creds.mqtt_username,
        "mqtt_password": creds.mqtt_password,
        "topic_base": creds.topic_base,
        "config_url": creds.config_url,
        "config_token": creds.config_token,
    }
    if wifi is not None:
        content["wifi_ssid"], content["wifi_password"] = wifi
    return content


def ca_file_content(ca_path: str) -> bytes:
    """``/ca.crt`` for the board: the environment's CA certificate, PEM, normalised (one certificate, no key).

    Refuses a file that is not a PEM certificate, so a key or a DER file never lands on the board."""
    import ssl

    try:
        der = ssl.PEM_cert_to_DER_cert(Path(ca_path).read_text())
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(
            f"`{ca_path}` is not a PEM certificate; point the environment's CA at the PEM file of its CA."
        ) from None
    return ssl.DER_cert_to_PEM_cert(der).encode()


def _plan_files(local: list[firmware.LocalFile], board_hashes: dict[str, str]) -> tuple[list, list]:
    """(files to copy, board paths to remove): changed/new files, and files of the app package the firmware no
    longer has (including the `.py` twin of a compiled `.mpy` and the reverse)."""
    wanted = {f.path for f in local}
    copy = [f for f in local if board_hashes.get(f.path) != f.sha256]
    remove = sorted(p for p in board_hashes if p.startswith(firmware.APP_ROOT + "/") and p not in wanted)
    return copy, remove


def flash(
    settings,
    request: FlashRequest,
    progress: Progress | None = None,
    console: Callable[[str], None] | None = None,
) -> dict:
    """Flash one board; returns a summary (no secrets). With ``dry_run`` nothing on the board or in the state
    dir changes: the summary is the plan."""
    from iotctl.devices import ensure_provisioned, load_credentials, validate_device_id
    from iotctl.errors import NotFound

    report = progress or (lambda step, done, total: None)
    validate_device_id(request.device_id)
    wifi = _wifi(request)
    local = firmware.local_files(request.firmware_dir, compile_=request.compile_)
    packages = firmware.declared_packages(request.firmware_dir)
    cached = firmware.package_files_from_cache(packages, request.mip_cache) if request.mip_cache else []

    with Board.connect(request.port) as board:
        report("checking board", 0, 1)
        info = board.info()
        board.require_version(info)
        current = board.public_device_file()
        if wifi is None and not (current and current.get("has_wifi")):
            raise WifiMissing(
                f"The board on `{request.port}` has no Wi-Fi credentials to keep; pass --wifi-ssid "
                "and --wifi-password-file instead of --keep-wifi."
            )
        roots = ["/main.py", "/main.mpy", "/lib", DEVICE_FILE, CA_FILE, LEGACY_CA_FILE]
        board_hashes = board.hashes(roots) if info.has_sha256 else {}
        copy, remove = _plan_files(local + cached, board_hashes)
        to_install = (
            [] if request.mip_cache else [p for p in packages if not firmware.package_present(p, set(board_hashes))]
        )

        creds = None
        try:
            creds = load_credentials(settings, request.device_id)
        except NotFound:
            if not request.dry_run:
                creds = ensure_provisioned(settings, request.device_id)
        if creds is not None and creds.mqtt_tls and creds.mqtt_ca_file:
            # The environment's CA: the firmware verifies the broker and the config server by it (/ca.crt, PEM).
            ca = firmware.LocalFile(CA_FILE, ca_file_content(creds.mqtt_ca_file))
            if board_hashes.get(CA_FILE) != ca.sha256:
                copy.append(ca)
            if LEGACY_CA_FILE in board_hashes:  # firmware 0.1's copy would shadow nothing, but may be stale
                remove.append(LEGACY_CA_FILE)
        device_bytes = None
        device_changed = True
        if creds is not None and wifi is not None:
            device_bytes = (json.dumps(device_file_content(creds, wifi), indent=1, sort_keys=True) + "\n").encode()
            device_changed = board_hashes.get(DEVICE_FILE) != firmware.LocalFile(DEVICE_FILE, device_bytes).sha256

        need = sum(len(f.data) for f in copy) + (len(device_bytes or b"") if device_changed else 0)
        free = info.free_bytes
        summary = {
            "port": request.port,
            "device_id": request.device_id,
            "micropython": info.version_text,
            "machine": info.machine,
            "dry_run": request.dry_run,
            "compiled": request.compile_,
            "copy": [f.path for f in copy],
            "unchanged": sorted(f.path for f in local + cached if f not in copy),
            "remove": remove,
            "packages": packages,
            "packages_to_install": to_install if not request.mip_cache else [],
            "packages_from_cache": [f.path for f in cached if f in copy],
            "device_file": "write" if device_changed else "unchanged",
            "provisioned": creds is not None,
            "bytes_to_copy": need,
            "free_bytes": free,
            "online": None,
        }
        if free is not None and need + FLASH_MARGIN_BYTES > free:
            raise OutOfFlash(
                f"The board on `{request.port}` has {free // 1024} KiB free but the flash needs "
                f"{(need + FLASH_MARGIN_BYTES) // 1024} KiB; delete files on it (mpremote rm) or use --compile."
            )
        if request.dry_run:
            return summary

        board.makedirs(_parents([f.path for f in copy]))
        total = sum(len(f.data) for f in copy)
        done = 0
        for f in copy:
            base = done
            board.write_file(f.path, f.data, progress=lambda n, base=base, f=f: report(f.path, base + n, total))
            done += len(f.data)
            report(f.path, done, total)
        board.remove(remove)
        for package in to_install:
            report(f"mip install {package}", 0, 1)
            _mip_install(board, package)
            report(f"mip install {package}", 1, 1)
        if device_bytes is not None:
            if device_changed:
                board.write_file(DEVICE_FILE, device_bytes)
        else:
            board.write_device_file(device_file_content(creds, None), keep_wifi=True)
        report("soft reset", 0, 1)
        board.soft_reset()
        if request.wait_online:
            summary["online"] = wait_online(board, request.online_timeout, console)
    return summary


def _parents(paths: list[str]) -> list[str]:
    parents: set[str] = set()
    for path in paths:
        parent = posixpath.dirname(path)
        while parent not in ("", "/"):
            parents.add(parent)
            parent = posixpath.dirname(parent)
    return sorted(parents, key=lambda p: (p.count("/"), p))


def _mip_install(board: Board, package: str) -> None:
    """Install one micropython-lib package with mpremote's `mip` (fetched by this computer, written over serial)."""
    import contextlib
    import io
    import types

    from mpremote.commands import CommandError
    from mpremote.mip import do_mip

    state = types.SimpleNamespace(transport=board.transport, did_action=lambda: None, ensure_raw_repl=lambda: None)
    args = types.SimpleNamespace(command=["install"], packages=[package], index=None, target="/lib", mpy=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            do_mip(state, args)
    except (CommandError, OSError) as exc:
        raise OperationFailed(
            f"Installing `{package}` with mip failed ({exc}); check this computer's internet "
            "access or pass --mip-cache DIR with the package in it."
        ) from None


def wait_online(board: Board, timeout: float, console: Callable[[str], None] | None = None) -> str:
    """Read the console until the firmware's online line; the line. NotOnline after ``timeout`` seconds."""
    started = time.monotonic()
    for line in board.read_lines(until=lambda text: ONLINE_MARKER in text, timeout=timeout):
        if console is not None:
            console(line)
        if ONLINE_MARKER in line:
            return line
    raise NotOnline(
        f"The board on `{board.port}` did not print `{ONLINE_MARKER}` within {time.monotonic() - started:.0f} s; "
        f"watch it with `iotctl device logs --port {board.port}` (Wi-Fi, broker address) or pass --no-wait."
    )
