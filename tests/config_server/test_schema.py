"""The key schema as data: validation, merge and merge-patch, diff, `key=value` parsing, JSON Schema."""

from __future__ import annotations

import jsonschema
import pytest

from iotctl.errors import InvalidInput
from iots6_platform.core.devconfig import schema


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


# ------------------------------------------------------------------ nesting (issue #10: RecursionError, traceback)
DEEP = "[" * 1900 + "]" * 1900


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.json", '{"labels": ' + DEEP + "}"),
        ("deep.toml", "labels = " + DEEP + "\n"),
        ("parseable.json", '{"labels": ' + "[" * 40 + "]" * 40 + "}"),  # parses, still refused by depth
        ("parseable.toml", "labels = " + "[" * 40 + "]" * 40 + "\n"),
    ],
)
def test_config_files_nested_too_deep_are_refused_in_one_sentence(tmp_path, name, text):
    from iotctl.devconfig.client import load_document
    from iots6_platform.core.contract import MAX_JSON_DEPTH

    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InvalidInput) as info:
        load_document(path)
    message = str(info.value)
    assert f"`{path}`" in message and f"deeper than {MAX_JSON_DEPTH} levels" in message and "\n" not in message


def test_config_push_of_a_deep_file_exits_6_without_a_traceback(tmp_path):
    from typer.testing import CliRunner

    from iotctl.cli.main import app as cli

    path = tmp_path / "deep.toml"
    path.write_text("labels = " + DEEP + "\n")
    env = {"IOTCTL_CONFIG_URL": "http://127.0.0.1:9", "IOTCTL_STATE_DIR": str(tmp_path / "state")}
    result = CliRunner().invoke(cli, ["config", "push", str(path), "--device", "d1", "--yes"], env=env)
    assert result.exit_code == 6, result.output
    assert "Traceback" not in result.output and "levels" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("value", [DEEP, "[" * 40 + "]" * 40])
def test_config_set_with_a_deeply_nested_value_is_a_validation_error(value):
    patch = schema.parse_assignment("labels=" + value)
    assert patch == {"labels": value}  # kept as text, as for any value that is not usable JSON
    with pytest.raises(schema.ConfigInvalid, match="must be an object of strings"):
        schema.validate(patch)
