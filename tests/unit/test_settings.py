"""Settings precedence: defaults < iotctl.toml < IOTCTL_* env < flags, with clear errors."""

from __future__ import annotations

import pytest

from iotctl.errors import InvalidInput
from iotctl.settings import load_settings


def test_precedence(tmp_path):
    toml = tmp_path / "iotctl.toml"
    toml.write_text('mqtt_port = 1000\ntopic_base = "from-file"\nstate_dir = "/tmp/file-state"\n')
    env = {"IOTCTL_CONFIG": str(toml), "IOTCTL_MQTT_PORT": "2000"}
    s = load_settings({"state_dir": tmp_path / "flag"}, environ=env)
    assert s.topic_base == "from-file"  # file beats default
    assert s.mqtt_port == 2000  # env beats file
    assert s.state_dir == tmp_path / "flag"  # flag beats file
    assert load_settings({"mqtt_port": 3000}, environ=env).mqtt_port == 3000  # flag beats env
    assert load_settings(environ={"IOTCTL_CONFIG": str(toml)}).mqtt_port == 1000


def test_implicit_file_is_optional_but_a_named_one_is_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}).topic_base == "iots6"
    with pytest.raises(InvalidInput, match="does not exist"):
        load_settings(environ={"IOTCTL_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("mqtt_port = ", "not valid TOML"),
        ("nonsense = 1", "Unknown key `nonsense`"),
        ('mqtt_port = "x"', "must be"),
    ],
)
def test_bad_files(tmp_path, content, message):
    toml = tmp_path / "bad.toml"
    toml.write_text(content)
    with pytest.raises(InvalidInput, match=message):
        load_settings(environ={"IOTCTL_CONFIG": str(toml)})


def test_bad_env_value_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput, match="IOTCTL_PG_PORT"):
        load_settings(environ={"IOTCTL_PG_PORT": "many"})
