"""One MicroPython board on a serial port, driven through mpremote's raw-REPL transport.

Everything that reaches the board goes over the serial link (never a command line).  Plain filesystem work uses
mpremote's own calls (``fs_writefile``, ``fs_mkdir``, ``fs_rmfile``).  Code of our own runs on the board only where
mpremote has no call or would need a round trip per file: the board's facts (implementation, version, free space)
and the hash of every file are one REPL call each that prints one Python literal, and ``/device.json`` is read
and written on the board itself, so its secrets (the Wi-Fi password, the tokens) never cross the link back.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from iotctl.flash.errors import MicroPythonTooOld, NoBoard, NotMicroPython, PortBusy

MIN_VERSION = (1, 23, 0)  # ssl.SSLContext with PEM CAs: the firmware verifies TLS servers (iots6/net.py)
BAUDRATE = 115200
#: Seconds to wait for the raw-REPL banner before deciding the port is not a MicroPython board.
REPL_TIMEOUT = 5.0

# Keys of /device.json that may be shown; everything else in it (passwords, tokens) never leaves the board
# through `public_device_file`.
PUBLIC_DEVICE_KEYS = (
    "device_id",
    "broker_host",
    "broker_port",
    "broker_tls",
    "mqtt_username",
    "config_url",
    "topic_base",
    "wifi_ssid",
)

_INFO = """\
import sys, os
try:
    import hashlib
    _h = hasattr(hashlib, 'sha256')
except ImportError:
    _h = False
try:
    _s = os.statvfs('/')
    _s = (_s[0], _s[2], _s[3])
except Exception:
    _s = None
print(repr((sys.implementation.name, tuple(sys.implementation.version)[:3],
            getattr(sys.implementation, '_machine', ''), _h, _s)))
"""

# Feeds a running RP2040 watchdog from a soft timer while iotctl holds the REPL (see Board.hold_watchdog).
HOLD_WATCHDOG = """
try:
    import machine
    _iotctl_wdt = machine.WDT(timeout=8300)
    _iotctl_feed = machine.Timer(period=1000, callback=lambda t: _iotctl_wdt.feed())
except (ImportError, AttributeError, ValueError, OSError):
    pass
"""


# Walks the given roots and prints {path: sha256 hex} for every file; one REPL call for the whole board.
_HASHES = """\
import os, hashlib, binascii
def _walk(p, out):
    try:
        st = os.stat(p)
    except OSError:
        return
    if st[0] & 0x4000:
        for e in os.ilistdir(p):
            _walk(p.rstrip('/') + '/' + e[0], out)
        return
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        while True:
            b = f.read(1024)
            if not b:
                break
            h.update(b)
    out[p] = binascii.hexlify(h.digest()).decode()
_r = {}
for _p in %r:
    _walk(_p, _r)
print(repr(_r))
"""

_READ_DEVICE_FILE = """\
import json
try:
    with open('/device.json') as f:
        _d = json.load(f)
except (OSError, ValueError):
    _d = None
if _d is None:
    print('None')
else:
    print(repr(({k: _d[k] for k in %r if k in _d}, bool(_d.get('wifi_ssid')), bool(_d.get('wifi_password')))))
"""

# Writes /device.json from the literal sent, keeping the board's Wi-Fi keys when asked; atomically via rename.
_WRITE_DEVICE_FILE = """\
import json, os
_new = json.loads(%r)
if %r:
    try:
        with open('/device.json') as f:
            _old = json.load(f)
    except (OSError, ValueError):
        _old = {}
    for _k in ('wifi_ssid', 'wifi_password'):
        if _old.get(_k):
            _new[_k] = _old[_k]
with open('/device.json.tmp', 'w') as f:
    json.dump(_new, f)
os.rename('/device.json.tmp', '/device.json')
del _new
"""


@dataclass(frozen=True)
class BoardInfo:
    implementation: str
    version: tuple[int, int, int]
    machine: str
    has_sha256: bool
    fs_block_size: int | None
    fs_blocks: int | None
    fs_free_blocks: int | None

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)

    @property
    def free_bytes(self) -> int | None:
        if self.fs_block_size is None or self.fs_free_blocks is None:
            return None
        return self.fs_block_size * self.fs_free_blocks


def _probe_port(port: str) -> None:
    """Open and close the port once, to tell "nothing there" and "held by another program" apart."""
    import serial

    if not os.path.exists(port) and "://" not in port:
        raise NoBoard(
            f"No board at `{port}`; plug the Pico W in and check `iotctl device list`, or pass the right --port."
        )
    try:
        handle = serial.Serial(port, BAUDRATE, exclusive=True, timeout=0)
    except serial.SerialException as exc:
        code = exc.errno if isinstance(exc.errno, int) else None
        text = str(exc)
        if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY) or "exclusively lock" in text:
            raise PortBusy(
                f"Serial port `{port}` is busy (another program holds it: mpremote, Thonny, a serial "
                "monitor); close that program and retry."
            ) from None
        if code == errno.EACCES:
            raise PortBusy(
                f"Serial port `{port}` is not accessible; add yourself to the `dialout` group "
                "(sudo usermod -aG dialout $USER) and log in again."
            ) from None
        if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
            raise NoBoard(
                f"No board at `{port}`; plug the Pico W in and check `iotctl device list`, or pass the right --port."
            ) from None
        raise NotMicroPython(f"Serial port `{port}` could not be opened ({text}); check the --port.") from None
    handle.close()


class Board:
    """A connected board in the raw REPL. Use as a context manager: ``with Board.connect(port) as board``."""

    def __init__(self, port: str, transport) -> None:
        self.port = port
        self.transport = transport

    @classmethod
    @contextlib.contextmanager
    def connect(cls, port: str, *, repl_timeout: float = REPL_TIMEOUT) -> Iterator[Board]:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        _probe_port(port)
        try:
            transport = SerialTransport(port, baudrate=BAUDRATE, timeout=1)
        except TransportError:
            raise PortBusy(
                f"Serial port `{port}` could not be opened (it may have just been taken by another "
                "program); close other serial programs and retry."
            ) from None
        board = cls(port, transport)
        try:
            try:
                # mpremote prints what it read when the banner does not come; that is not ours to show.
                with contextlib.redirect_stdout(io.StringIO()):
                    transport.enter_raw_repl(soft_reset=False, timeout_overall=repl_timeout)
            except TransportError:
                raise NotMicroPython(
                    f"The device on `{port}` does not answer as a MicroPython raw REPL; install MicroPython on "
                    "it (see docs/first-flash.md) or pass the right --port."
                ) from None
            board.hold_watchdog()
            yield board
        finally:
            board.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.transport.in_raw_repl:
                self.transport.exit_raw_repl()
        with contextlib.suppress(Exception):
            self.transport.close()

    def hold_watchdog(self) -> None:
        """Keep a running RP2040 watchdog fed while we hold the REPL.

        The firmware arms the watchdog (8.3 s, cannot be stopped, survives a soft reset); interrupting the firmware
        to copy files would otherwise reset the board mid-copy. A soft timer feeds it until the next soft reset,
        after which the firmware takes over again. Boards without ``machine.WDT`` (or without a running firmware)
        are unaffected.
        """
        self.run(HOLD_WATCHDOG)

    # ---- queries ----

    def run(self, code: str) -> str:
        """Execute ``code`` on the board; its stdout. A board-side exception becomes OperationFailed."""
        from mpremote.transport import TransportError, TransportExecError

        from iotctl.errors import OperationFailed

        try:
            return self.transport.exec(code).decode("utf-8", "replace")
        except TransportExecError as exc:
            last = (exc.error_output.strip().splitlines() or ["?"])[-1]
            raise OperationFailed(
                f"The board on `{self.port}` raised `{last}`; run `iotctl device logs --port "
                f"{self.port}` to see its console."
            ) from None
        except TransportError as exc:
            raise OperationFailed(
                f"The serial link to `{self.port}` failed ({exc}); re-plug the board and retry."
            ) from None

    def literal(self, code: str):
        return ast.literal_eval(self.run(code).strip())

    def info(self) -> BoardInfo:
        name, version, machine, has_sha256, fs = self.literal(_INFO)
        if name != "micropython":
            raise NotMicroPython(
                f"The device on `{self.port}` runs `{name}`, not MicroPython; install the "
                "MicroPython UF2 (see docs/first-flash.md)."
            )
        version = tuple(int(v) for v in (list(version) + [0, 0, 0])[:3])
        info = BoardInfo(name, version, machine, has_sha256, *(fs or (None, None, None)))
        return info

    def require_version(self, info: BoardInfo, minimum: tuple[int, int, int] = MIN_VERSION) -> None:
        if info.version < minimum:
            want = ".".join(map(str, minimum))
            raise MicroPythonTooOld(
                f"The board on `{self.port}` runs MicroPython `{info.version_text}`, older than `{want}`; install "
                "the current Pico W UF2 (see docs/first-flash.md)."
            )

    def hashes(self, roots: list[str]) -> dict[str, str]:
        """{path: sha256 hex} of every file under ``roots`` (files or directories), in one REPL call."""
        return self.literal(_HASHES % (roots,))

    def public_device_file(self) -> dict | None:
        """The non-secret keys of /device.json plus whether Wi-Fi is set; None when there is none."""
        result = self.literal(_READ_DEVICE_FILE % (PUBLIC_DEVICE_KEYS,))
        if result is None:
            return None
        public, has_ssid, has_password = result
        return {**public, "has_wifi": bool(has_ssid and has_password)}

    # ---- changes ----

    def _fs_error(self, path: str, exc: Exception):
        from mpremote.transport import TransportExecError

        from iotctl.errors import OperationFailed

        if isinstance(exc, TransportExecError):  # a board-side exception mpremote could not map to an OSError
            reason = (exc.error_output.strip().splitlines() or ["?"])[-1]
        else:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else exc.__class__.__name__
        return OperationFailed(
            f"Changing `{path}` on the board on `{self.port}` failed ({reason}); check free space with "
            "`iotctl device list` and retry."
        )

    def _fs_change(self, change: Callable[[str], None], path: str, done: Callable[[str], bool]) -> None:
        """``change(path)`` with mpremote; a board-side failure is fine when ``done(path)`` holds afterwards (the
        directory exists, the file is gone): errno numbers differ between ports, what is there does not."""
        from mpremote.transport import TransportError, TransportExecError

        try:
            change(path)
        except (OSError, TransportExecError) as exc:
            if not done(path):
                raise self._fs_error(path, exc) from None
        except TransportError as exc:  # the link itself
            raise self._fs_error(path, exc) from None

    def makedirs(self, directories: list[str]) -> None:
        """Create each directory that is missing, parents first (mpremote's ``fs_mkdir``)."""
        for directory in sorted(set(directories)):
            self._fs_change(self.transport.fs_mkdir, directory, self.transport.fs_isdir)

    def write_file(self, path: str, data: bytes, progress: Callable[[int], None] | None = None) -> None:
        """Write ``data`` to ``path`` (through a temp name, renamed at the end so a cut link leaves no half file)."""
        from mpremote.transport import TransportError

        from iotctl.errors import OperationFailed

        tmp = path + ".part"
        try:
            self.transport.fs_writefile(
                tmp,
                data,
                chunk_size=512,
                progress_callback=(lambda done, _total: progress(done)) if progress else None,
            )
        except (TransportError, OSError) as exc:
            raise OperationFailed(
                f"Writing `{path}` to the board on `{self.port}` failed ({exc}); check free "
                "space with `iotctl device list` and retry."
            ) from None
        self.run(f"import os\nos.rename({tmp!r}, {path!r})")  # mpremote's transport has no rename

    def remove(self, paths: list[str]) -> None:
        """Remove each file that is there (mpremote's ``fs_rmfile``); one already gone is fine."""
        for path in sorted(set(paths)):
            self._fs_change(self.transport.fs_rmfile, path, lambda p: not self.transport.fs_exists(p))

    def write_device_file(self, content: dict, *, keep_wifi: bool) -> None:
        """Write /device.json; with ``keep_wifi`` the board's current Wi-Fi keys are kept (they never leave it)."""
        self.run(_WRITE_DEVICE_FILE % (json.dumps(content), bool(keep_wifi)))

    def soft_reset(self) -> None:
        """Leave the raw REPL and soft-reset, so main.py runs; the console output follows on the port."""
        self.transport.exit_raw_repl()
        self.transport.serial.write(b"\x04")

    def read_lines(
        self,
        *,
        until: Callable[[str], bool] | None = None,
        timeout: float | None = None,
        max_lines: int | None = None,
    ) -> Iterator[str]:
        """Yield console lines as they come (without line endings) until a limit is reached."""
        serial = self.transport.serial
        deadline = None if timeout is None else time.monotonic() + timeout
        buffer = b""
        count = 0
        while deadline is None or time.monotonic() < deadline:
            chunk = serial.read(serial.in_waiting or 1)
            if not chunk:
                continue
            buffer += chunk
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                text = raw.decode("utf-8", "replace").rstrip("\r")
                count += 1
                yield text
                if (until is not None and until(text)) or (max_lines is not None and count >= max_lines):
                    return


@contextlib.contextmanager
def console(port: str) -> Iterator[Board]:
    """The port opened for reading the console only (no raw REPL, no interrupt: the firmware keeps running)."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    _probe_port(port)
    try:
        transport = SerialTransport(port, baudrate=BAUDRATE, timeout=0.2)
    except TransportError:
        raise PortBusy(f"Serial port `{port}` could not be opened; close other serial programs and retry.") from None
    board = Board(port, transport)
    try:
        yield board
    finally:
        board.close()
