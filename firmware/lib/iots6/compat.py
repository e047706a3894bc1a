"""What differs between MicroPython and CPython, in one place.

The application imports ``time``/``os`` helpers from here so it also runs under CPython (the simulator runs the
app logic there with shims).  Hardware modules (``machine``, ``network``, ``ntptime``) are never imported here:
only ``app.build_hardware()`` imports them.
"""

import time

try:
    from micropython import const  # noqa: F401  (compile-time constants on the device)
except ImportError:  # CPython

    def const(value):
        return value


if hasattr(time, "ticks_ms"):  # MicroPython: ticks wrap at 2**30, so always compare with ticks_diff
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
    sleep_ms = time.sleep_ms
else:  # CPython shim: a monotonic millisecond counter that never wraps

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, delta):
        return a + delta

    def sleep_ms(ms):
        time.sleep(ms / 1000)


def epoch_ms():
    """Wall-clock milliseconds since the port's epoch (the RP2040 RTC, set by NTP)."""
    if hasattr(time, "time_ns"):
        return time.time_ns() // 1000000
    return int(time.time() * 1000)


class Clock:
    """The real clock: monotonic ticks for scheduling, the RTC for timestamps.

    Everything time-based takes a clock object with this interface, so tests can drive time themselves.
    """

    def ticks_ms(self):
        return ticks_ms()

    def ticks_diff(self, a, b):
        return ticks_diff(a, b)

    def ticks_add(self, a, delta):
        return ticks_add(a, delta)

    def sleep_ms(self, ms):
        sleep_ms(ms)

    def epoch_ms(self):
        return epoch_ms()


# errno values MicroPython's rp2 port raises but whose names its ``errno`` module does not carry.
ENOENT = 2
EIO = 5
EAGAIN = 11
ENOSPC = 28  # LittleFS LFS_ERR_NOSPC
EROFS = 30  # a filesystem mounted read-only
ECONNRESET = 104
ETIMEDOUT = 110
ECONNREFUSED = 111
EHOSTUNREACH = 113


def errno_of(exc):
    """The errno of an OSError (``exc.errno`` or its first argument), or None."""
    code = getattr(exc, "errno", None)
    if code is None and exc.args:
        code = exc.args[0]
    return code if isinstance(code, int) else None


MBEDTLS_X509_CERT_VERIFY_FAILED = -9984  # -0x2700: the server's certificate is not signed by the flashed CA
NAMES = {ENOSPC: "flash full", EROFS: "flash read-only", ETIMEDOUT: "timeout", ECONNREFUSED: "refused",
         ECONNRESET: "connection reset", EHOSTUNREACH: "unreachable", EIO: "I/O error", ENOENT: "missing",
         -2: "name not resolved", MBEDTLS_X509_CERT_VERIFY_FAILED: "TLS: server not trusted"}


def describe(exc):
    """A short text for the OLED and the console: ``flash full`` rather than ``[Errno 28]``."""
    if isinstance(exc, OSError):
        if len(exc.args) > 1 and isinstance(exc.args[1], str):
            return exc.args[1]
        code = errno_of(exc)
        if code in NAMES:
            return NAMES[code]
    text = str(exc)
    return text if text else exc.__class__.__name__


def read_json(path, default=None):
    """The JSON in ``path``, or ``default`` when the file is missing or unreadable (never raises OSError or
    ValueError).  The file is read whole (these files are small) and parsed from memory."""
    import json

    try:
        with open(path) as f:
            return json.loads(f.read())
    except (OSError, ValueError, MemoryError):
        return default


def write_json(path, data):
    """Write JSON atomically: a temp file then rename (LittleFS renames are atomic, so a power cut leaves the
    old or the new file, never half of one).  On a failed write (flash full, read-only) the temp file is removed
    so it cannot eat the space the next write needs, and the OSError is raised."""
    import json
    import os

    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(data))
        try:
            os.rename(tmp, path)
        except OSError:  # FAT (not LittleFS) will not rename over an existing file
            os.remove(path)
            os.rename(tmp, path)
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def free_bytes(root):
    """Free space of the filesystem holding ``root`` (``os.statvfs``: f_bavail * f_bsize), or None if unknown."""
    import os

    try:
        st = os.statvfs(root)
        return st[4] * st[0]
    except (OSError, AttributeError):
        return None


def join(root, name):
    if not root or root == "/":
        return "/" + name
    return root.rstrip("/") + "/" + name
