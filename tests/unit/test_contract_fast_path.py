"""The contract's fast path (msgspec, ``contract._fast_v1``) against its full check (``contract._full_v1``), with
hypothesis: whatever the fast path accepts, the full check accepts untouched (no field rejected) and turns into the
same Reading; whatever it declines goes through the full check, which alone names errors.  So the fast path changes
speed, never an outcome.

Inputs: valid readings, readings with one field changed to a value of any JSON type (in range, out of range, wrong
type, huge, negative zero, non-ASCII), duplicated keys, unknown fields (nested, invalid UTF-8), and byte mutations
of all of those.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iots6_platform.core import contract

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BASE = {
    "v": 1,
    "device_id": "pico-01",
    "ts": "2026-06-01T11:59:00.250Z",
    "seq": 7,
    "temperature": 21.5,
    "humidity": 40.0,
    "pressure": 1009.2,
    "motion": False,
    "switch": None,
    "rssi": -61,
    "uptime_s": 3600,
    "fw": "1.2.0",
}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, -127, -128, 125, 126, 100, 1100, 300, 299]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([-0.0, 0.5, 125.0, 125.0000001, -50.0, -50.1, 1e308, 1e-320, 99.99999999999999]),
    st.text(max_size=40),
    st.sampled_from(["motion", "switch", "", "é" * 32, "é" * 33, "x" * 32, "x" * 33, "1.2.0\t\\"]),
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
fields = st.sampled_from([*contract.FIELDS, "extra"])
raw_texts = st.sampled_from(
    [
        "NaN",
        "-Infinity",
        "1e400",
        "1.0",
        "7.0",
        "true",
        '"\\ud800"',
        '"\\u0000"',
        '"2026-06-01T11:59:00Z"',
        '"2026-06-01T11:59:00+01:00"',
        '"2026-06-01T11:59:00-00:00"',
        '"2026-06-01 11:59:00Z"',
        '"2019-06-01T11:59:00Z"',
        '"2027-06-01T11:59:00Z"',
        "[" * 40 + "]" * 40,
        '"\xff"',
    ]
)


def full(payload, channel) -> tuple[contract.Reading | None, list]:
    rejected: list[contract.FieldRejection] = []
    try:
        return contract._full_v1(payload, "pico-01", channel, NOW, rejected), rejected
    except contract.ContractError:
        return None, rejected


def check(payload: bytes | str, channel: str = contract.TELEMETRY) -> bool:
    fast = contract._fast_v1(payload, "pico-01", channel, NOW)
    if fast is not None:
        reading, rejected = full(payload, channel)
        assert rejected == [] and reading is not None, payload
        assert fast == reading, payload
        assert [type(v) for v in fast] == [type(v) for v in reading], payload
    return fast is not None


def test_the_fast_path_takes_the_common_reading():
    assert check(json.dumps(BASE).encode())
    assert check(json.dumps({**BASE, "event": "switch", "switch": True}).encode(), contract.EVENT)
    assert check(json.dumps(BASE))  # text as well as bytes
    assert check(json.dumps({k: v for k, v in BASE.items() if k in ("device_id", "ts", "seq")}).encode())
    assert check(json.dumps({**BASE, "fw": "é" * 32}, ensure_ascii=False).encode())


@pytest.mark.parametrize(
    "payload",
    [
        b'{"device_id":"pico-01","ts":"2026-06-01T11:59:00Z","seq":1,"x":"\xff"}',  # invalid UTF-8, unknown field
        b'{"device_id":"pico-01","ts":"2026-06-01T11:59:00Z","seq":1,"x":' + b"[" * 33 + b"]" * 33 + b"}",
        b'{"device_id":"pico-01","ts":"2026-06-01T11:59:00Z","seq":1,"x":NaN}',
        b'{"device_id":"pico-01","ts":"2026-06-01T11:59:00Z","seq":1.0}',
        b'{"device_id":"pico-01","ts":"2026-06-01T11:59:00Z","seq":1,"temperature":true}',
        b"\xef\xbb\xbf" + json.dumps(BASE).encode(),  # a UTF-8 byte order mark, which json.loads skips
        json.dumps({**BASE, "pad": "x" * contract.MAX_PAYLOAD_BYTES}).encode(),
    ],
    ids=["bad-utf8-unknown", "deep-unknown", "nan-unknown", "float-seq", "bool-number", "bom", "oversized"],
)
def test_the_fast_path_declines_what_only_the_full_check_can_judge(payload):
    assert contract._fast_v1(payload, "pico-01", contract.TELEMETRY, NOW) is None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.lists(st.tuples(fields, json_values), max_size=3),
    raw=st.lists(st.tuples(fields, raw_texts), max_size=2),
    channel=st.sampled_from([contract.TELEMETRY, contract.EVENT]),
    as_text=st.booleans(),
)
def test_fast_path_agrees_with_the_full_check(changes, raw, channel, as_text):
    data = dict(BASE)
    data.update(changes)
    text = json.dumps(data, ensure_ascii=False)
    for name, value in raw:  # duplicate keys and texts json.dumps cannot write, spliced in before the brace
        text = text[:-1] + f', "{name}": {value}' + "}"
    check(text if as_text else text.encode("utf-8", "surrogatepass"), channel)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(min_value=0, max_value=400),
    replacement=st.binary(min_size=0, max_size=3),
    cut=st.integers(min_value=0, max_value=3),
)
def test_fast_path_agrees_with_the_full_check_on_mutated_bytes(position, replacement, cut):
    payload = json.dumps({**BASE, "event": "motion"}).encode()
    position %= len(payload)
    mutated = payload[:position] + replacement + payload[position + cut :]
    check(mutated, contract.TELEMETRY)
    check(mutated, contract.EVENT)
