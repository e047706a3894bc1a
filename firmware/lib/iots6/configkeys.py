"""The configuration keys the config server may send, with their types, ranges and defaults.

A mirror of ``services/iots6_platform/core/devconfig/schema.py`` (``KEYS``), which is the source of truth: the server validates what an
operator writes with it, and the device checks what the server sends with this table.  Kept as plain tuples (no
dataclasses, no regex: MicroPython's ``re`` has no counted repetition) so it runs on the Pico;
``tests/firmware/test_config_mirror.py`` fails when the two tables differ, and runs the same values through both
checks (this one inside the real MicroPython interpreter) to prove the device accepts exactly what the server can
send.

Spec tuples, by kind:

* ``("int", default, lo, hi, choices)``: an int (not a bool), ``lo <= v <= hi`` when ``lo`` is set, in ``choices``
  when set;
* ``("bool", default)``;
* ``("str", default, max_len, choices)``;
* ``("host", default, max_len)``: a DNS hostname (RFC 1123 labels), at most ``max_len`` characters;
* ``("object", fields)``: a dict whose entries are all among ``fields`` (a dict of specs); missing ones are allowed;
* ``("map", default, max_entries, key_max_len, value_max_len)``: str -> str of printable characters.
"""

CLIMATE_SENSORS = ("auto", "bme280", "sht31", "dht22", "internal", "none")

KEYS = {
    "telemetry_interval_s": ("int", 60, 5, 3600, None),
    "config_poll_s": ("int", 3600, 60, 86400, None),
    "motion_cooldown_s": ("int", 30, 0, 3600, None),
    "switch_debounce_ms": ("int", 50, 5, 2000, None),
    "sensors": (
        "object",
        {
            "climate": ("str", "auto", None, CLIMATE_SENSORS),
            "bme280_address": ("int", 118, None, None, (118, 119)),
        },
    ),
    "temperature_unit": ("str", "C", None, ("C", "F")),
    "oled_enabled": ("bool", True),
    "oled_brightness": ("int", 255, 0, 255, None),
    "led_enabled": ("bool", True),
    "ntp_server": ("host", "pool.ntp.org", 253),
    "labels": ("map", {}, 16, 32, 128),
}

_HOST_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _printable(text):
    """No control characters (0x00-0x1f, 0x7f): what the server's TEXT_PATTERN allows."""
    for ch in text:
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            return False
    return True


def valid_hostname(text):
    """RFC 1123: dot-separated labels of 1-63 letters, digits and hyphens, not starting or ending with a hyphen."""
    if not isinstance(text, str) or not text:
        return False
    for label in text.split("."):
        if not 1 <= len(label) <= 63 or label[0] == "-" or label[-1] == "-":
            return False
        for ch in label:
            if ch != "-" and ch not in _HOST_CHARS:
                return False
    return True


def default(spec):
    """The spec's default value (an object's default is the dict of its fields' defaults)."""
    if spec[0] == "object":
        out = {}
        for name in spec[1]:
            out[name] = default(spec[1][name])
        return out
    value = spec[1]
    return dict(value) if isinstance(value, dict) else value


def valid(spec, value):
    """True when ``value`` satisfies ``spec`` (the same rules as the server's validator)."""
    kind = spec[0]
    if kind == "int":
        # type() and not isinstance(): JSON true is not a number of seconds, and bool is an int subclass.
        if type(value) is not int:
            return False
        if spec[2] is not None and not spec[2] <= value <= spec[3]:
            return False
        return spec[4] is None or value in spec[4]
    if kind == "bool":
        return value is True or value is False
    if kind == "str":
        if not isinstance(value, str):
            return False
        if spec[2] is not None and len(value) > spec[2]:
            return False
        return spec[3] is None or value in spec[3]
    if kind == "host":
        return isinstance(value, str) and len(value) <= spec[2] and valid_hostname(value)
    if kind == "object":
        if not isinstance(value, dict):
            return False
        fields = spec[1]
        for name in value:
            if name not in fields or not valid(fields[name], value[name]):
                return False
        return True
    if kind == "map":
        if not isinstance(value, dict) or len(value) > spec[2]:
            return False
        for name in value:
            item = value[name]
            if not isinstance(name, str) or not 1 <= len(name) <= spec[3] or not _printable(name):
                return False
            if not isinstance(item, str) or len(item) > spec[4] or not _printable(item):
                return False
        return True
    return False


def clean(data):
    """The keys of a server answer that are known and valid; anything else is ignored (the layer below stays)."""
    out = {}
    if not isinstance(data, dict):
        return out
    for name in KEYS:
        if name in data and valid(KEYS[name], data[name]):
            out[name] = data[name]
    return out


def defaults():
    """Every shared key with its default: the configuration of a device that never heard from the server."""
    out = {}
    for name in KEYS:
        out[name] = default(KEYS[name])
    return out
