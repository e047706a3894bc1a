"""The tail's table model as a unit: rows per device, units, status, age, bad messages, the device filter."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from iotctl.errors import InvalidInput
from iotctl.tail import ERROR, IGNORED, READING, STATUS, TailModel, format_age, reading_json
from iots6_platform.core import contract

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def _payload(device_id: str, seconds_ago: float, **values) -> str:
    reading = contract.Reading(
        NOW - timedelta(seconds=seconds_ago),
        device_id,
        "telemetry",
        3,
        21.25,
        40.0,
        1013.0,
        False,
        True,
        -55,
        10,
        "1.2.3",
    )
    return contract.make_payload(reading, **values)


def test_rows_one_per_device_with_units_status_and_age():
    model = TailModel("iots6")
    assert model.handle("iots6/b/telemetry", _payload("b", 5), NOW).kind == READING
    assert model.handle("iots6/a/telemetry", _payload("a", 75), NOW).kind == READING
    assert model.handle("iots6/a/telemetry", _payload("a", 65, seq=4, temperature=22.0), NOW).kind == READING
    assert model.handle("iots6/a/status", b"offline", NOW).kind == STATUS
    rows = model.rows(NOW)
    assert [r.device for r in rows] == ["a", "b"]
    a, b = rows
    assert a.cells() == (
        "a",
        "offline",
        "22.0 °C",
        "40.0 %RH",
        "1013.0 hPa",
        "still",
        "closed",
        "-55 dBm",
        "1.2.3",
        "1m05s",
    )
    assert a.age_s == 65
    assert (b.status, b.age) == ("-", "5s")
    assert model.readings == 3 and model.devices["a"].readings == 2
    # ages move with the clock, not with messages
    assert model.rows(NOW + timedelta(hours=2))[1].age == "2h00m"


def test_status_without_reading_and_missing_values():
    model = TailModel("iots6")
    model.handle("iots6/c/status", "online", NOW)
    [row] = model.rows(NOW)
    assert row.cells() == ("c", "online", "-", "-", "-", "-", "-", "-", "-", "-")
    model.handle("iots6/c/telemetry", _payload("c", 0, temperature=None, motion=None, rssi=None), NOW)
    [row] = model.rows(NOW)
    assert (row.temperature, row.motion, row.rssi, row.age) == ("-", "-", "-", "0s")


def test_bad_messages_are_counted_not_raised():
    model = TailModel("iots6")
    bad = [
        ("iots6/a/telemetry", b"{not json"),
        ("iots6/a/telemetry", _payload("a", 0, seq=-1)),  # a wrong key field rejects the whole message
        ("iots6/a/telemetry", _payload("b", 0)),  # device mismatch
        ("iots6/a/b/c", b"{}"),
        ("iots6/a/status", b"maybe"),
    ]
    updates = [model.handle(topic, payload, NOW) for topic, payload in bad]
    assert [u.kind for u in updates] == [ERROR] * len(bad)
    assert model.errors == len(bad) and model.readings == 0 and model.rows(NOW) == []
    assert "device_mismatch" in updates[2].error
    assert model.last_error.startswith("iots6/a/status: bad_status")


def test_an_impossible_value_costs_only_itself_as_in_the_ingest():
    """The ingest stores such a reading with the field NULL (docs/contract.md); tail shows it, the field blank."""
    model = TailModel("iots6")
    update = model.handle("iots6/a/telemetry", _payload("a", 0, temperature=999), NOW)
    assert update.kind == READING and update.reading.temperature is None and update.reading.humidity == 40.0
    assert [(r.field, r.reason) for r in update.rejected] == [("temperature", "impossible_value")]
    assert model.rejected_fields == 1 and model.errors == 0
    assert reading_json(update.reading)["temperature"] is None


def test_device_filter_and_subscriptions():
    model = TailModel("iots6", "a")
    assert model.subscriptions() == ["iots6/a/telemetry", "iots6/a/event", "iots6/a/status", "iots6/a"]
    assert TailModel("iots6").subscriptions() == ["iots6/#"]
    assert model.handle("iots6/b/telemetry", _payload("b", 0), NOW).kind == IGNORED
    assert model.handle("iots6/a/config", b"{}", NOW).kind == IGNORED
    assert model.readings == 0 and list(model.devices) == []
    with pytest.raises(InvalidInput, match="`a/b`"):
        TailModel("iots6", "a/b")


def test_legacy_reading_converted_and_json_fields():
    model = TailModel("iots6")
    legacy = "MQTT event:" + json.dumps(
        {
            "device_id": "old",
            "event_type": "motion",
            "timestamp": "2025-06-01T11:59:50Z",
            "temperature": 212.0,
            "pressure": 29.92,
            "motion": "HIGH",
        }
    )
    update = model.handle("iots6/old", legacy, NOW)
    doc = reading_json(update.reading)
    assert list(doc) == [
        "v",
        "device_id",
        "ts",
        "seq",
        "temperature",
        "humidity",
        "pressure",
        "motion",
        "switch",
        "event",
        "rssi",
        "uptime_s",
        "fw",
    ]
    assert doc["temperature"] == 100.0 and doc["pressure"] == pytest.approx(1013.2, abs=0.1)
    assert (doc["ts"], doc["event"], doc["motion"], doc["switch"]) == (
        "2025-06-01T11:59:50.000Z",
        "motion",
        True,
        None,
    )
    assert model.rows(NOW)[0].age == "10s"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (-3, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m00s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (90000, "1d01h"),
    ],
)
def test_format_age(seconds, text):
    assert format_age(seconds) == text
