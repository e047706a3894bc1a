"""The contract module: topics, payload v1, the legacy format, and the JSON Schema generated from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from iotctl import contract
from iotctl.contract import ContractError, Reading

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DOCS = Path(__file__).resolve().parents[2] / "docs"


def reading(**changes) -> Reading:
    base = Reading(NOW, "pico-01", "telemetry", 5, 21.25, 40.5, 1012.5, False, True, -61, 3600, "1.2.0")
    return base._replace(**changes)


def test_topics_round_trip():
    for channel in (contract.TELEMETRY, contract.EVENT, contract.STATUS, contract.CONFIG, contract.LEGACY):
        name = contract.topic("iots6", "pico-01", channel)
        assert contract.parse_topic("iots6", name) == ("pico-01", channel)
    assert contract.topic("site7", "a", contract.LEGACY) == "site7/a"
    assert contract.subscription("site7") == "site7/#"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("other/pico/telemetry", "bad_topic"),
        ("iots6/pico/telemetry/x", "bad_topic"),
        ("iots6/pico/foo", "bad_topic"),
        ("iots6/bad id/telemetry", "bad_device_id"),
        ("iots6/" + "x" * 65, "bad_device_id"),
    ],
)
def test_bad_topics(name, reason):
    with pytest.raises(ContractError) as info:
        contract.parse_topic("iots6", name)
    assert info.value.reason == reason


def test_v1_round_trip_and_unknown_fields_ignored():
    payload = json.loads(contract.make_payload(reading()))
    payload["future_field"] = {"nested": True}
    parsed = contract.parse_v1(json.dumps(payload), "pico-01", contract.TELEMETRY, NOW)
    assert parsed == reading()


def test_event_needs_its_kind():
    payload = contract.make_payload(reading(kind="switch"))
    assert contract.parse_v1(payload, "pico-01", contract.EVENT, NOW).kind == "switch"
    with pytest.raises(ContractError, match="bad_event"):
        contract.parse_v1(contract.make_payload(reading()), "pico-01", contract.EVENT, NOW)


def test_nulls_mean_no_sensor():
    parsed = contract.parse_v1(contract.make_payload(reading(pressure=None, motion=None)), "pico-01", "telemetry", NOW)
    assert parsed.pressure is None and parsed.motion is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"temperature": 200}, "impossible_value"),
        ({"temperature": float("nan")}, "impossible_value"),
        ({"humidity": -1}, "impossible_value"),
        ({"pressure": 2000}, "impossible_value"),
        ({"temperature": True}, "bad_type"),
        ({"seq": -1}, "impossible_value"),
        ({"seq": 1.5}, "bad_type"),
        ({"rssi": 10}, "impossible_value"),
        ({"fw": "x" * 40}, "bad_type"),
        ({"v": 2}, "bad_version"),
        ({"ts": "2026-06-01 12:00:00"}, "bad_timestamp"),
        ({"ts": "2026-06-01T12:00:00+02:00"}, "bad_timestamp"),
        ({"ts": "2021-06-01T12:00:00Z"}, "clock_not_set"),
        ({"device_id": "pico-02"}, "device_mismatch"),
    ],
)
def test_impossible_or_malformed_values_are_rejected_with_a_reason(change, reason):
    payload = json.loads(contract.make_payload(reading()))
    payload.update(change)
    with pytest.raises(ContractError) as info:
        contract.parse_v1(json.dumps(payload), "pico-01", contract.TELEMETRY, NOW)
    assert info.value.reason == reason and info.value.detail


def test_future_timestamps_beyond_skew_are_rejected():
    ok = contract.format_ts(NOW + timedelta(minutes=5))
    late = contract.format_ts(NOW + timedelta(minutes=11))
    base = json.loads(contract.make_payload(reading()))
    assert contract.parse_v1(json.dumps({**base, "ts": ok}), "pico-01", "telemetry", NOW)
    with pytest.raises(ContractError, match="future_timestamp"):
        contract.parse_v1(json.dumps({**base, "ts": late}), "pico-01", "telemetry", NOW)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"{", "not_json"), (b"\xff", "not_json"), (b"3", "not_object"), (b"x" * 5000, "oversized")],
)
def test_not_an_object(payload, reason):
    with pytest.raises(ContractError) as info:
        contract.parse_v1(payload, "pico-01", contract.TELEMETRY, NOW)
    assert info.value.reason == reason


def test_legacy_conversion():
    legacy = {
        "event_type": "motion",
        "device_id": "pico-01",
        "temperature": 212.0,
        "humidity": 50,
        "pressure": 30.0,
        "motion": "HIGH",
        "switch": "LOW",
        "wifi_rssi": -70,
        "uptime_seconds": 10,
        "timestamp": "2026-06-01T11:59:59Z",
        "version": "0.3.1",
        "extra": 1,
    }
    parsed = contract.parse_legacy(("MQTT event: " + json.dumps(legacy)).encode(), "pico-01", NOW)
    assert parsed.kind == "motion" and parsed.seq == 0
    assert parsed.temperature == 100.0
    assert parsed.pressure == pytest.approx(1015.917, abs=0.001)
    assert (parsed.motion, parsed.switch, parsed.rssi, parsed.uptime_s, parsed.fw) == (
        True,
        False,
        -70,
        10,
        "0.3.1",
    )
    with pytest.raises(ContractError, match="bad_type"):
        contract.parse_legacy(json.dumps({**legacy, "motion": "MAYBE"}), "pico-01", NOW)
    with pytest.raises(ContractError, match="bad_event"):
        contract.parse_legacy(json.dumps({**legacy, "event_type": "boot"}), "pico-01", NOW)


def test_status_and_config_channels():
    assert contract.parse_message("iots6", "iots6/p/status", b"online", NOW)[1] == "online"
    assert contract.parse_message("iots6", "iots6/p/config", b'{"version": 3}', NOW)[1] is None
    with pytest.raises(ContractError, match="bad_status"):
        contract.parse_message("iots6", "iots6/p/status", b"sleeping", NOW)


def test_generated_schema_accepts_payloads_and_matches_the_docs():
    schema = contract.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    validator.validate(json.loads(contract.make_payload(reading())))
    validator.validate(json.loads(contract.make_payload(reading(kind="motion", temperature=None))))
    assert not validator.is_valid({**json.loads(contract.make_payload(reading())), "humidity": 101})
    committed = json.loads((DOCS / "contract.schema.json").read_text())
    assert committed == schema, "regenerate: python -m iotctl.contract > docs/contract.schema.json"
