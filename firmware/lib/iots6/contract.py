"""Mirror of ``services/iots6_platform/core/contract.py`` for the device: topics, payload v1 field names, ranges, version.

Kept as plain tuples and dicts (no typing, no dataclasses) so MicroPython runs it; tests/firmware/
test_contract_mirror.py imports both modules and fails if they disagree.
"""

import json

PAYLOAD_VERSION = 1
DEFAULT_TOPIC_BASE = "iots6"
DEVICE_ID_MAX_LEN = 64
MAX_PAYLOAD_BYTES = 4096
MAX_FW_LEN = 32
#: Readings stamped before this year come from an unset clock (the RP2040 RTC starts at 2021-01-01).
EARLIEST_YEAR = 2022

TELEMETRY = "telemetry"
EVENT = "event"
STATUS = "status"
CONFIG = "config"
CHANNELS = (TELEMETRY, EVENT, STATUS, CONFIG)
KIND_MOTION = "motion"
KIND_SWITCH = "switch"
EVENT_KINDS = (KIND_MOTION, KIND_SWITCH)
STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"
STATUS_NO_CLOCK = "no_clock"  # connected, but the clock is not set: readings wait in the buffer to be dated
STATUS_VALUES = (STATUS_ONLINE, STATUS_OFFLINE, STATUS_NO_CLOCK)

#: name -> (json type, unit, minimum, maximum, required), as in iots6_platform.core.contract.FIELDS (less the description).
FIELDS = {
    "v": ("integer", None, 1, 1, False),
    "device_id": ("string", None, None, None, True),
    "ts": ("string", None, None, None, True),
    "seq": ("integer", None, 0, 2**63 - 1, True),
    "temperature": ("number", "°C", -50.0, 125.0, False),
    "humidity": ("number", "%RH", 0.0, 100.0, False),
    "pressure": ("number", "hPa", 300.0, 1100.0, False),
    "motion": ("boolean", None, None, None, False),
    "switch": ("boolean", None, None, None, False),
    "event": ("string", None, None, None, False),
    "rssi": ("integer", "dBm", -127, 0, False),
    "uptime_s": ("integer", "s", 0, 2**31 - 1, False),
    "fw": ("string", None, None, None, False),
    "dropped": ("integer", None, 0, 2**31 - 1, False),
}

_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


def valid_device_id(device_id):
    """True when ``device_id`` matches ``[A-Za-z0-9_-]{1,64}`` (checked by hand: no regex module needed)."""
    if not isinstance(device_id, str) or not 1 <= len(device_id) <= DEVICE_ID_MAX_LEN:
        return False
    for ch in device_id:
        if ch not in _ID_CHARS:
            return False
    return True


def topic(base, device_id, channel):
    """``<base>/<device_id>/<channel>`` for one of CHANNELS; ValueError for a bad id or channel."""
    if not valid_device_id(device_id):
        raise ValueError("bad device id")
    if channel not in CHANNELS:
        raise ValueError("unknown channel")
    return base + "/" + device_id + "/" + channel


def format_ts(epoch_ms, gmtime=None):
    """RFC 3339 UTC with ``Z`` and milliseconds, from milliseconds since the port's epoch."""
    if gmtime is None:
        import time

        gmtime = time.gmtime
    t = gmtime(epoch_ms // 1000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (t[0], t[1], t[2], t[3], t[4], t[5], epoch_ms % 1000)


def clock_valid_year(year):
    return year >= EARLIEST_YEAR


def _number(name, value):
    """A reading rounded for the wire, or None when missing or outside what the contract accepts (a broken
    sensor must not get the whole message dead-lettered)."""
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    lo, hi = FIELDS[name][2], FIELDS[name][3]
    if not lo <= value <= hi:  # also false for NaN
        return None
    return round(value, 2)


def _boolean(value):
    if value is None:
        return None
    return bool(value)


def build_payload(device_id, seq, ts, readings, event=None, rssi=None, uptime_s=None, fw=None, dropped=0):
    """The payload v1 dict for one reading.

    ``readings`` holds ``temperature`` (°C), ``humidity`` (%RH), ``pressure`` (hPa), ``motion`` and ``switch``;
    missing keys become null.  ``event`` is set only for messages on the event topic.
    """
    data = {
        "v": PAYLOAD_VERSION,
        "device_id": device_id,
        "ts": ts,
        "seq": seq,
        "temperature": _number("temperature", readings.get("temperature")),
        "humidity": _number("humidity", readings.get("humidity")),
        "pressure": _number("pressure", readings.get("pressure")),
        "motion": _boolean(readings.get("motion")),
        "switch": _boolean(readings.get("switch")),
    }
    if event is not None:
        if event not in EVENT_KINDS:
            raise ValueError("unknown event")
        data["event"] = event
    if rssi is not None and -127 <= rssi <= 0:
        data["rssi"] = int(rssi)
    if uptime_s is not None:
        data["uptime_s"] = int(uptime_s)
    if fw is not None:
        data["fw"] = fw[:MAX_FW_LEN]
    if dropped:
        data["dropped"] = int(dropped)
    return data


def encode(data):
    """Compact JSON text of a payload dict."""
    return json.dumps(data, separators=(",", ":"))
