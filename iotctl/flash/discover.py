"""Finding attached boards: USB serial ports whose vendor is MicroPython's or Raspberry Pi's, plus ports named
explicitly (a board behind a USB-serial adapter, or a pseudo-terminal)."""

from __future__ import annotations

from iotctl.errors import IotctlError
from iotctl.flash.errors import NoBoard, SeveralBoards

#: USB vendor ids: Raspberry Pi (RP2040/RP2350 boards running MicroPython enumerate as 2e8a:0005) and MicroPython's
#: own (f055, used by pyboards and some ports).
BOARD_VIDS = {0x2E8A, 0xF055}


def candidate_ports(explicit: list[str] | None = None) -> list[dict]:
    """Serial ports that look like MicroPython boards, then the ``explicit`` ones: port, serial number, VID:PID."""
    from serial.tools import list_ports

    found: dict[str, dict] = {}
    for port in list_ports.comports():
        if port.vid in BOARD_VIDS:
            found[port.device] = {
                "port": port.device,
                "serial_number": port.serial_number,
                "vid_pid": f"{port.vid:04x}:{port.pid:04x}",
            }
    for port in explicit or []:
        found.setdefault(port, {"port": port, "serial_number": None, "vid_pid": None})
    return list(found.values())


def describe_board(entry: dict) -> dict:
    """``entry`` plus the board's MicroPython version and device id (from /device.json, never its secrets)."""
    from iotctl.flash.board import Board

    row = {**entry, "micropython": None, "machine": None, "device_id": None, "error": None}
    try:
        with Board.connect(entry["port"]) as board:
            info = board.info()
            row["micropython"] = info.version_text
            row["machine"] = info.machine
            device_file = board.public_device_file()
            row["device_id"] = (device_file or {}).get("device_id")
    except IotctlError as exc:
        row["error"] = str(exc)
    return row


def list_boards(explicit: list[str] | None = None) -> list[dict]:
    return [describe_board(entry) for entry in candidate_ports(explicit)]


def pick_port(port: str | None) -> str:
    """``port`` if given; else the one attached board; refuse (with the list) when there are none or several."""
    if port:
        return port
    ports = candidate_ports()
    if not ports:
        raise NoBoard(
            "No MicroPython board found on USB; plug the Pico W in (hold BOOTSEL only to install "
            "MicroPython, see docs/first-flash.md) or pass --port."
        )
    if len(ports) > 1:
        names = ", ".join(f"`{p['port']}`" for p in ports)
        raise SeveralBoards(f"Several boards are attached ({names}); pick one with --port.")
    return ports[0]["port"]
