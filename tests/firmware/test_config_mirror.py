"""The configuration the config server can send and the configuration the firmware accepts are the same thing.

``services/iots6_platform/core/devconfig/schema.py`` (``KEYS``) is the source of truth; the firmware mirrors it in
``firmware/lib/iots6/configkeys.py``.  Here: the two tables agree key by key (type, range, choices, lengths,
defaults), and a few hundred values - every boundary, type confusion and malformed string the server's
validator distinguishes - get the same verdict from the server's validator (CPython) and from the firmware's
check running inside the real MicroPython interpreter.  The effective configurations the server sends are kept
whole by the device.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from iots6_platform.core.devconfig import schema

from .conftest import run_micropython

HERE = Path(__file__).resolve().parent
MIRROR_PATH = HERE.parents[1] / "firmware" / "lib" / "iots6" / "configkeys.py"
KINDS = {"integer": "int", "boolean": "bool", "object": "object", "map": "map"}


@pytest.fixture(scope="module")
def mirror():
    spec = importlib.util.spec_from_file_location("iots6_configkeys_mirror", MIRROR_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # plain tables and functions: CPython loads it as it is
    return module


def _expected_spec(key: schema.Key):
    """The firmware's spec tuple for a server Key (see configkeys' docstring)."""
    if key.type == "integer":
        return ("int", key.default, key.minimum, key.maximum, key.enum)
    if key.type == "boolean":
        return ("bool", key.default)
    if key.type == "string" and key.pattern == schema.HOSTNAME_PATTERN:
        return ("host", key.default, key.max_length)
    if key.type == "string":
        return ("str", key.default, key.max_length, key.enum)
    if key.type == "object":
        return ("object", {name: _expected_spec(sub) for name, sub in key.fields.items()})
    if key.type == "map":
        return ("map", key.default, key.max_entries, key.key_max_length, key.max_length)
    raise AssertionError(f"a key type the firmware does not mirror: {key.type}")


def test_the_tables_agree_key_by_key(mirror):
    assert list(mirror.KEYS) == list(schema.KEYS)
    for name, key in schema.KEYS.items():
        assert mirror.KEYS[name] == _expected_spec(key), name
    assert mirror.defaults() == schema.DEFAULTS


def _values(key: schema.Key) -> list:
    """Values on both sides of every line the server's validator draws for ``key``."""
    junk = [None, [], {}, "", "x", 1.5, True, False, 0, -1]
    if key.type == "integer":
        out = [*junk, "30", 2**31, 10**20]
        if key.minimum is not None:
            lo, hi = key.minimum, key.maximum
            out += [lo - 1, lo, lo + 1, (lo + hi) // 2, hi - 1, hi, hi + 1, float(lo), float(hi)]
        for v in key.enum or ():
            out += [v, v - 1, v + 1, str(v), float(v)]
        return out
    if key.type == "boolean":
        return [*junk, 1, "true", "false"]
    if key.type == "string" and key.pattern == schema.HOSTNAME_PATTERN:
        label = "a" * 63
        long_name = ".".join([label] * 3) + "." + "b" * 61  # 253 characters
        return [
            *junk,
            "pool.ntp.org",
            "time.example.org",
            "a",
            "1.2.3.4",
            "a-b.c",
            "-a.org",
            "a-.org",
            "a..b",
            "a.b.",
            ".a",
            "host_name.org",
            "a b",
            "ünï.org",
            "a\n",
            label,
            label + "a",
            long_name,
            long_name + "b",
            "x" * 254,
        ]
    if key.type == "string":
        out = [*junk, " C", "c", "f", "AUTO", "auto ", "bme680", "x" * 300]
        return out + list(key.enum or ())
    if key.type == "object":
        out = [*junk, "auto", {"colour": "red"}, {"climate": None}, {"bme280_address": None}]
        for name, sub in key.fields.items():
            out += [{name: v} for v in _values(sub)]
        climates = key.fields["climate"].enum
        out += [{"climate": c, "bme280_address": a} for c in climates for a in (118, 119, 120)]
        return out
    if key.type == "map":
        n, kmax, vmax = key.max_entries, key.key_max_length, key.max_length
        return [
            *junk,
            {"name": "porch"},
            {"name": "porch", "location": "hall"},
            {f"k{i}": "v" for i in range(n)},
            {f"k{i}": "v" for i in range(n + 1)},
            {"k" * kmax: "v"},
            {"k" * (kmax + 1): "v"},
            {"": "v"},
            {"name": "v" * vmax},
            {"name": "v" * (vmax + 1)},
            {"name": "é" * vmax},
            {"name": "a\x00b"},
            {"name": "a\x1fb"},
            {"name": "a\x7fb"},
            {"name": "tab\there"},
            {"na\nme": "v"},
            {"name": 1},
            {"name": None},
            {"name": ["x"]},
            {"name": ""},
        ]
    raise AssertionError(key.type)


def _server_accepts(doc: dict) -> bool:
    try:
        schema.validate(doc)
    except schema.ConfigInvalid:
        return False
    return True


def test_the_device_accepts_exactly_what_the_server_can_send(node, tmp_path):
    single = [{name: value} for name, key in schema.KEYS.items() for value in _values(key)]
    fleet = {"telemetry_interval_s": 30, "labels": {"site": "lab"}, "config_poll_s": 600}
    device = {"sensors": {"bme280_address": 119}, "ntp_server": "time.lan", "labels": {"name": "porch"}}
    effective = [schema.DEFAULTS, schema.effective(fleet, {}), schema.effective(fleet, device)]
    # what the server's GET /v1/devices/<id>/config answers: the effective config plus device_id and version
    answers = [dict(doc, device_id="pico-1", version=7) for doc in effective]
    cases = single + effective + answers
    data = tmp_path / "config-cases.json"
    data.write_text(json.dumps(cases))
    done = run_micropython(node, HERE / "mpy_checks" / "accept_config.py", "--data", str(data))
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("KEPT "))
    kept = json.loads(line[5:])
    assert len(kept) == len(cases)
    disagree = []
    for doc, keys in zip(single, kept, strict=False):
        (name,) = doc
        if _server_accepts(doc) != (name in keys):
            disagree.append((doc, "server" if _server_accepts(doc) else "device"))
    assert not disagree, f"accepted by one side only: {disagree[:10]} ({len(disagree)} in all)"
    accepted = sum(_server_accepts(doc) for doc in single)
    assert 60 < accepted < len(single) - 200, accepted  # both verdicts are well represented
    for doc, keys in zip(effective + answers, kept[len(single) :], strict=True):
        schema.validate({k: v for k, v in doc.items() if k in schema.KEYS}, partial=False)
        assert keys == sorted(schema.KEYS), keys  # nothing the server sends is dropped by the device
