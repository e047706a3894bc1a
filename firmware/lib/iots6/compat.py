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


def read_json(path, default=None):
    """The JSON in ``path``, or ``default`` when the file is missing or unreadable (never raises)."""
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def write_json(path, data):
    """Write JSON atomically: a temp file then rename (LittleFS renames are atomic, so a power cut leaves the
    old or the new file, never half of one)."""
    import json
    import os

    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(data))
    try:
        os.rename(tmp, path)
    except OSError:  # FAT (not LittleFS) will not rename over an existing file
        os.remove(path)
        os.rename(tmp, path)


def join(root, name):
    if not root or root == "/":
        return "/" + name
    return root.rstrip("/") + "/" + name
