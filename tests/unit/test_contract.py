"""The contract module: topics, payload v1, the legacy format, and the JSON Schema generated from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from iots6_platform.core import contract
from iots6_platform.core.contract import ContractError, Reading

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
    assert committed == schema, "regenerate: python -m iots6_platform.core.contract > docs/contract.schema.json"


# ------------------------------------------------------------------ nesting, field-level rejections, dropped
def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [33, 1900])
def test_deeply_nested_json_is_malformed_not_a_crash(depth):
    """~1900 nested arrays used to raise RecursionError out of the parser (dead-lettered as internal_error)."""
    payload = json.loads(contract.make_payload(reading()))
    text = json.dumps(payload)[:-1] + ', "x": ' + _nested(depth) + "}"
    assert len(text) <= contract.MAX_PAYLOAD_BYTES
    with pytest.raises(ContractError) as info:
        contract.parse_v1(text, "pico-01", contract.TELEMETRY, NOW)
    assert info.value.reason == "malformed"
    assert str(contract.MAX_JSON_DEPTH) in info.value.detail
    with pytest.raises(ContractError, match="malformed"):
        contract.parse_legacy('{"device_id": "pico-01", "x": ' + _nested(depth) + "}", "pico-01", NOW)


def test_nesting_up_to_the_limit_is_fine_and_brackets_in_strings_do_not_count():
    payload = json.loads(contract.make_payload(reading()))
    payload["x"] = json.loads(_nested(contract.MAX_JSON_DEPTH - 1))  # the object itself is level 1
    payload["fw"] = "[" * 40
    with pytest.raises(ContractError, match="bad_type"):  # fw too long: parsed, not malformed
        contract.parse_v1(json.dumps(payload), "pico-01", contract.TELEMETRY, NOW)
    payload["fw"] = "1.0"
    assert contract.parse_v1(json.dumps(payload), "pico-01", contract.TELEMETRY, NOW).fw == "1.0"


def test_details_never_echo_a_whole_nested_value():
    payload = json.loads(contract.make_payload(reading()))
    payload["v"] = json.loads(_nested(30))
    with pytest.raises(ContractError) as info:
        contract.parse_v1(json.dumps(payload), "pico-01", contract.TELEMETRY, NOW)
    assert info.value.reason == "bad_version" and len(info.value.detail) < 120


@pytest.mark.parametrize(
    ("field", "raw", "reason"),
    [
        ("pressure", 29.8, "impossible_value"),
        ("temperature", "warm", "bad_type"),
        ("humidity", 130, "impossible_value"),
        ("motion", "yes", "bad_type"),
        ("rssi", 10, "impossible_value"),
        ("uptime_s", -5, "impossible_value"),
        ("fw", "x" * 40, "bad_type"),
        ("dropped", -1, "impossible_value"),
        ("temperature", float("nan"), "impossible_value"),
    ],
)
def test_one_bad_field_is_nulled_and_recorded_the_rest_kept(field, raw, reason):
    payload = json.loads(contract.make_payload(reading()))
    payload[field] = raw
    rejected: list[contract.FieldRejection] = []
    parsed = contract.parse_v1(json.dumps(payload), "pico-01", contract.TELEMETRY, NOW, rejected=rejected)
    assert parsed == reading()._replace(**{field: None})
    (rejection,) = rejected
    assert (rejection.field, rejection.reason) == (field, reason)
    assert rejection.raw == json.dumps(raw) and rejection.detail
    # Without a list to record rejections in, the parser stays strict.
    with pytest.raises(ContractError) as info:
        contract.parse_v1(json.dumps(payload), "pico-01", contract.TELEMETRY, NOW)
    assert info.value.reason == reason


def test_a_message_with_no_usable_field_is_still_rejected():
    base = {"v": 1, "device_id": "pico-01", "ts": contract.format_ts(NOW), "seq": 9}
    rejected: list[contract.FieldRejection] = []
    with pytest.raises(ContractError) as info:
        contract.parse_v1(
            json.dumps({**base, "temperature": 900, "humidity": "wet"}), "pico-01", contract.TELEMETRY, NOW, rejected
        )
    assert info.value.reason == "impossible_value"
    assert "temperature" in info.value.detail and "humidity" in info.value.detail
    assert rejected == []  # nothing recorded: the whole message is the dead letter
    # One valid field is enough, and so is the edge of an event.
    assert (
        contract.parse_v1(
            json.dumps({**base, "temperature": 900, "rssi": -50}), "pico-01", contract.TELEMETRY, NOW, rejected
        ).rssi
        == -50
    )
    event = contract.parse_v1(
        json.dumps({**base, "event": "motion", "motion": "yes"}), "pico-01", contract.EVENT, NOW, rejected
    )
    assert event.kind == "motion" and event.motion is None
    # A reading with nothing wrong and nothing measured (a heartbeat) is stored as before.
    assert contract.parse_v1(json.dumps(base), "pico-01", contract.TELEMETRY, NOW, rejected).seq == 9


def test_required_fields_still_reject_the_whole_message():
    payload = json.loads(contract.make_payload(reading()))
    for change, reason in (({"seq": -1}, "impossible_value"), ({"ts": 5}, "bad_type"), ({"v": 2}, "bad_version")):
        with pytest.raises(ContractError) as info:
            contract.parse_v1(json.dumps({**payload, **change}), "pico-01", contract.TELEMETRY, NOW, rejected=[])
        assert info.value.reason == reason


def test_dropped_is_part_of_the_reading():
    payload = json.loads(contract.make_payload(reading()))
    assert contract.parse_v1(json.dumps({**payload, "dropped": 17}), "pico-01", "telemetry", NOW).dropped == 17
    assert contract.parse_v1(json.dumps(payload), "pico-01", "telemetry", NOW).dropped is None
    assert json.loads(contract.make_payload(reading(dropped=3)))["dropped"] == 3
    assert "dropped" not in json.loads(contract.make_payload(reading()))
    assert contract.READING_COLUMNS[-1] == "dropped" and len(contract.READING_COLUMNS) == len(reading())


LEGACY_BASE = {
    "event_type": "heartbeat",
    "device_id": "pico-01",
    "temperature": 68.0,
    "humidity": 40.0,
    "motion": "LOW",
    "switch": "HIGH",
    "timestamp": "2026-06-01T11:59:59Z",
}


def test_legacy_double_converted_pressure_with_two_decimals_is_nulled_not_guessed():
    """The older firmware's BME280 path divides hPa by 33.8639 twice: 1009.2 hPa arrives as 0.88. Two decimals
    fix the hPa value only to +-5.7 hPa, so it is not recovered; the rest of the reading is stored."""
    rejected: list[contract.FieldRejection] = []
    parsed = contract.parse_legacy(json.dumps({**LEGACY_BASE, "pressure": 0.88}), "pico-01", NOW, rejected)
    assert parsed.pressure is None and parsed.temperature == 20.0 and parsed.switch is True
    (rejection,) = rejected
    assert (rejection.field, rejection.raw, rejection.reason) == ("pressure", "0.88", "double_converted")
    assert "5.7 hPa" in rejection.detail
    with pytest.raises(ContractError, match="double_converted"):
        contract.parse_legacy(json.dumps({**LEGACY_BASE, "pressure": 0.88}), "pico-01", NOW)


@pytest.mark.parametrize(("raw", "expected"), [(0.880049, 1009.21), (0.8800486, 1009.21), (0.8801, None), (0.87, None)])
def test_legacy_double_converted_pressure_is_recovered_only_when_exact(raw, expected):
    rejected: list[contract.FieldRejection] = []
    parsed = contract.parse_legacy(json.dumps({**LEGACY_BASE, "pressure": raw}), "pico-01", NOW, rejected)
    assert parsed.pressure == expected
    if expected is None:
        assert [r.reason for r in rejected] == ["double_converted"]
    else:
        assert rejected == []
        # Within 0.01 hPa of the value the sensor read (the firmware's 0.88... = hPa / 33.8639^2).
        assert abs(parsed.pressure - raw * contract.INHG_TO_HPA**2) <= 0.01


def test_legacy_pressure_in_neither_range_is_an_impossible_value():
    rejected: list[contract.FieldRejection] = []
    parsed = contract.parse_legacy(json.dumps({**LEGACY_BASE, "pressure": 5.0}), "pico-01", NOW, rejected)
    assert parsed.pressure is None and [r.reason for r in rejected] == ["impossible_value"]


def test_legacy_bad_state_is_nulled_and_recorded():
    rejected: list[contract.FieldRejection] = []
    parsed = contract.parse_legacy(json.dumps({**LEGACY_BASE, "motion": "MAYBE"}), "pico-01", NOW, rejected)
    assert parsed.motion is None and parsed.switch is True
    assert [(r.field, r.raw, r.reason) for r in rejected] == [("motion", '"MAYBE"', "bad_type")]


@pytest.mark.parametrize("field", ["event_type", "motion", "switch"])
@pytest.mark.parametrize("value", [[1], {"a": 1}])
def test_legacy_containers_where_a_word_belongs_are_contract_errors_not_crashes(field, value):
    """`[1] in {...}` raises TypeError (a list is not hashable): it used to escape as an internal error."""
    with pytest.raises(ContractError) as info:
        contract.parse_legacy(json.dumps({**LEGACY_BASE, field: value}), "pico-01", NOW)
    assert info.value.reason == ("bad_event" if field == "event_type" else "bad_type")
