"""The key schema as data: validation, merge and merge-patch, diff, `key=value` parsing, JSON Schema."""

from __future__ import annotations

import jsonschema
import pytest

from iotctl.devconfig import schema
from iotctl.errors import InvalidInput


def test_defaults_are_a_complete_valid_configuration():
    schema.validate(schema.DEFAULTS, partial=False)
    jsonschema.validate(schema.DEFAULTS, schema.json_schema(complete=True))
    assert schema.DEFAULTS["sensors"] == {"climate": "auto", "bme280_address": 118}


@pytest.mark.parametrize(
    "doc",
    [
        {"telemetry_interval_s": True},
        {"oled_brightness": -1},
        {"sensors": {"climate": "bme680"}},
        {"labels": {"name": "a\x00b"}},
        {"ntp_server": "x" * 254},
        {"mystery": 1},
    ],
)
def test_the_validator_and_the_generated_json_schema_agree(doc):
    with pytest.raises(schema.ConfigInvalid):
        schema.validate(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema.json_schema())


def test_merge_patch_and_diff():
    stored = {"telemetry_interval_s": 30, "labels": {"name": "porch", "location": "hall"}}
    patched = schema.merge_patch(stored, {"telemetry_interval_s": None, "labels": {"location": "lab"}})
    assert patched == {"labels": {"name": "porch", "location": "lab"}}
    assert stored["telemetry_interval_s"] == 30  # inputs are never modified
    assert schema.diff(stored, patched) == {
        "labels.location": {"old": "hall", "new": "lab"},
        "telemetry_interval_s": {"old": 30, "new": None},
    }
    assert schema.merge_patch({}, {"labels": {"x": None}}) == {}


@pytest.mark.parametrize(
    ("text", "patch"),
    [
        ("telemetry_interval_s=30", {"telemetry_interval_s": 30}),
        ("oled_enabled=false", {"oled_enabled": False}),
        ("labels.location=lab", {"labels": {"location": "lab"}}),
        ("labels.name=123", {"labels": {"name": "123"}}),  # string keys keep the raw text
        ("sensors.bme280_address=119", {"sensors": {"bme280_address": 119}}),
        ("ntp_server=time.example.org", {"ntp_server": "time.example.org"}),
        ("led_enabled=null", {"led_enabled": None}),
    ],
)
def test_parse_assignment(text, patch):
    assert schema.parse_assignment(text) == patch


def test_parse_assignment_refuses_unknown_keys_and_missing_equals():
    with pytest.raises(schema.ConfigInvalid, match="`sensors.colour` is not a configuration key"):
        schema.parse_assignment("sensors.colour=red")
    with pytest.raises(InvalidInput, match="key=value"):
        schema.parse_assignment("telemetry_interval_s")
