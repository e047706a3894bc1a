"""Environments without any service: the stored model, validation, precedence, what `settings` and `env` print,
and that no secret reaches a file, a listing or --json."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iotctl import environments
from iotctl.broker import dynsec
from iotctl.broker.pwhash import PasswordHash, hash_password, verify_password
from iotctl.cli.main import app
from iotctl.errors import InvalidInput, NotFound, OperationFailed
from iotctl.settings import load_settings

ADMIN, OPERATOR, TOKEN, DB = "admin-secret-1", "operator-secret-2", "token-secret-3", "db-secret-4"


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray ./iotctl.toml
    return tmp_path / "state"


@pytest.fixture
def creds(tmp_path) -> Path:
    directory = tmp_path / "handed-over"
    directory.mkdir()
    for name, value in (
        ("mqtt-admin-password", ADMIN),
        ("mqtt-operator-password", OPERATOR),
        ("config-admin-token", TOKEN),
        ("postgres-admin-password", DB),
    ):
        (directory / name).write_text(value + "\n")
    (directory / "tls-ca-crt").write_text("-----BEGIN CERTIFICATE-----\nnot a real one\n-----END CERTIFICATE-----\n")
    return directory


def register(state: Path, creds: Path, name: str = "prod", **overrides):
    values = dict(
        broker_host="broker.example",
        broker_port=8883,
        config_url="https://config.example",
        database_url="postgresql://iots6@db.example:5432/iots6",
        secrets=environments.secrets_from_dir(creds),
    )
    values.update(overrides)
    return environments.register_environment(state, name, "vm", **values)


def test_register_writes_private_files_and_loads_back(state, creds):
    env = register(state, creds)
    assert stat.S_IMODE(env.file.stat().st_mode) == 0o600
    assert stat.S_IMODE(env.home.stat().st_mode) == 0o700
    assert sorted(p.name for p in env.home.iterdir()) == sorted(environments.SECRETS)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in env.home.iterdir())
    text = env.file.read_text()
    for secret in (ADMIN, OPERATOR, TOKEN, DB):
        assert secret not in text
    loaded = environments.load(state, "prod")
    assert loaded.broker == environments.BrokerTarget("broker.example", 8883, True, "5")
    assert loaded.database == environments.DatabaseTarget("direct", "postgresql://iots6@db.example:5432/iots6")
    assert loaded.secret(environments.MQTT_ADMIN) == ADMIN and loaded.ca_file == env.home / "tls-ca-crt"
    assert loaded.devices_dir == env.home / "devices"
    public = json.dumps(loaded.public())
    for secret in (ADMIN, OPERATOR, TOKEN, DB):
        assert secret not in public
    with pytest.raises(InvalidInput, match="--force"):
        register(state, creds)
    assert register(state, creds, broker_port=9883, replace=True).broker.port == 9883


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"broker_port": 0}, "broker.port"),
        ({"config_url": "ftp://x"}, "config_url"),
        ({"database_url": "postgresql://u:pw@h/db"}, "must not contain a password"),
        ({"database_access": "teleport"}, "database.access"),
        ({"credentials": "vault:somewhere"}, "credentials"),
        ({"secrets": {"aws-key": "x"}}, "Unknown secret"),
    ],
)
def test_bad_registrations_are_refused(state, creds, overrides, message):
    with pytest.raises(InvalidInput, match=message):
        register(state, creds, **overrides)
    assert not (state / "environments" / "prod.toml").exists()


@pytest.mark.parametrize("name", ["Prod", "1st", "a_b", "x" * 41, "", "local", "docker"])
def test_names_are_checked(state, creds, name):
    with pytest.raises(InvalidInput):
        register(state, creds, name=name)


def test_a_hand_edited_file_is_checked_on_load(state, creds):
    env = register(state, creds)
    env.file.write_text(env.file.read_text().replace('kind = "vm"', 'kind = "mainframe"'))
    with pytest.raises(InvalidInput, match="`kind` must be one of"):
        environments.load(state, "prod")
    env.file.write_text("nonsense = 1\n[broker]\nhost = 'h'\nport = 1\n")
    with pytest.raises(InvalidInput, match="unknown key `nonsense`"):
        environments.load(state, "prod")


def test_unknown_environment_names_the_known_ones(state, creds):
    register(state, creds)
    with pytest.raises(NotFound, match=r"`staging` is not registered.*local, docker, prod"):
        environments.active(load_settings({"state_dir": state, "env": "staging"}, environ={}))


def test_key_vault_credentials_and_in_cluster_database(state):
    env = environments.register_environment(
        state,
        "aks-prod",
        "aks",
        broker_host="broker.example",
        broker_port=8883,
        config_url="https://config.example",
        database_access="job",
        credentials="keyvault:https://kv-iots6-prod.vault.azure.net/",
    )
    # Credentials are read from the vault when needed (tests/aks/test_deploy_parts.py, against FakeKeyVault); only
    # the public CA certificate is a file.
    assert env.secret_file(environments.MQTT_OPERATOR) is None and env.keyvault_url.startswith("https://kv-iots6")
    assert env.secret_file(environments.CA_CERT) == env.home / "tls-ca-crt"
    with pytest.raises(OperationFailed, match=r"only from inside its cluster: `iotctl db migrate --env aks-prod` runs"):
        env.db_endpoint()
    assert env.public()["credentials"] == "keyvault:https://kv-iots6-prod.vault.azure.net/"
    assert env.public()["secrets"]["mqtt-admin-password"] == {"file": None, "present": False}


def test_builtin_local_is_todays_behaviour(state):
    settings = load_settings({"state_dir": state}, environ={"IOTCTL_MQTT_PORT": "1999"})
    env = environments.active(settings)
    assert (env.name, env.kind, env.builtin) == ("local", "local", True)
    assert env.broker == environments.BrokerTarget("127.0.0.1", 1999, False, "5")
    assert env.config_url == "http://127.0.0.1:18080" and env.devices_dir == state / "devices"
    assert env.secret_file(environments.MQTT_ADMIN) == state / "secrets" / "mqtt-admin.password"
    with pytest.raises(NotFound, match="run `iotctl stack up`"):
        env.operator_endpoint()
    docker = environments.active(load_settings({"state_dir": state}, environ={"IOTCTL_DOCKER": "1"}))
    assert docker.kind == "docker"
    assert docker.secret_file(environments.MQTT_ADMIN) == state / "docker" / "secrets" / "mqtt-admin.password"
    assert environments.active(settings.model_copy(update={"env": "docker"})).kind == "docker"


def test_settings_record_where_each_value_came_from(state, tmp_path):
    toml = tmp_path / "iotctl.toml"
    toml.write_text('topic_base = "t"\n')
    settings = load_settings({"env": "prod"}, environ={"IOTCTL_CONFIG": str(toml), "IOTCTL_PG_PORT": "1"})
    assert settings.sources["env"] == "--env" and settings.sources["topic_base"] == str(toml)
    assert settings.sources["pg_port"] == "IOTCTL_PG_PORT" and settings.sources["mqtt_port"] == "default"


def test_a_registered_environment_supplies_the_platform_settings(state, creds):
    register(state, creds)
    settings = load_settings({"state_dir": state, "env": "prod"}, environ={"IOTCTL_MQTT_HOST": "elsewhere"})
    from iotctl.settings import describe

    rows = {r["key"]: r for r in environments.describe_settings(settings, describe(settings))}
    assert rows["mqtt_host"]["value"] == "broker.example"
    assert rows["mqtt_host"]["source"].endswith("; IOTCTL_MQTT_HOST ignored")
    assert rows["config_url"]["value"] == "https://config.example"
    assert rows["state_dir"]["source"] == "--state_dir" or rows["state_dir"]["source"] == "--state-dir"
    endpoint = environments.active(settings).operator_endpoint()
    assert (endpoint.host, endpoint.port, endpoint.tls, endpoint.username) == (
        "broker.example",
        8883,
        True,
        "svc.operator",
    )
    assert endpoint.env == "prod" and OPERATOR not in repr(endpoint)


def test_env_cli_add_show_list_remove(state, creds, tmp_path):
    env = {"IOTCTL_STATE_DIR": str(state), "IOTCTL_CONFIG": str(tmp_path / "none.toml")}
    (tmp_path / "none.toml").write_text("")
    run = CliRunner().invoke
    added = run(
        app,
        [
            "env",
            "add",
            "prod",
            "--broker",
            "mqtts://broker.example",
            "--config-url",
            "https://config.example",
            "--credentials-dir",
            str(creds),
            "--json",
        ],
        env=env,
        catch_exceptions=False,
    )
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["broker"] == "mqtts://broker.example:8883"
    shown = run(app, ["env", "show", "prod"], env=env, catch_exceptions=False)
    assert "secret mqtt-admin-password:" in shown.output and "(present)" in shown.output
    assert "device_registry: config server API" in shown.output
    listed = run(app, ["env", "list"], env=env, catch_exceptions=False)
    assert "prod" in listed.output and "local" in listed.output
    everything = added.output + shown.output + listed.output
    for secret in (ADMIN, OPERATOR, TOKEN, DB):
        assert secret not in everything
    no_creds = run(app, ["env", "add", "x", "--broker", "mqtts://h", "--config-url", "https://c"], env=env)
    assert no_creds.exit_code == 6 and "--credentials-dir" in no_creds.output
    bad_url = run(
        app,
        ["env", "add", "x", "--broker", "http://h", "--config-url", "https://c", "--credentials-dir", str(creds)],
        env=env,
    )
    assert bad_url.exit_code == 6 and "mqtts://" in bad_url.output
    refused = run(app, ["env", "remove", "prod"], env=env)  # no terminal: needs --yes
    assert refused.exit_code == 6 and "--yes" in refused.output
    assert run(app, ["env", "remove", "prod", "--yes"], env=env).exit_code == 0
    assert not (state / "environments" / "prod").exists()
    assert run(app, ["env", "remove", "local", "--yes"], env=env).exit_code == 6


def test_password_hashes_are_mosquittos(tmp_path):
    """A hash made here verifies in dynamic security's form and back (the migration and the seeding rely on it);
    the reference value is what mosquitto_passwd's algorithm gives for a fixed salt."""
    hashed = PasswordHash.create("s3cret", salt=bytes(range(12)))
    assert hashed.encoded().startswith("$7$101$AAECAwQFBgcICQoL$")
    assert PasswordHash.from_dynsec(hashed.dynsec()).verify("s3cret")
    assert verify_password("s3cret", hash_password("s3cret")) and not verify_password("x", hash_password("s3cret"))
    assert not verify_password("s3cret", "$6$not-ours")
    state = dynsec.seed_state("adm", "iots6", {"ingest": "in"}, {"d1": PasswordHash.parse(hash_password("p"))})
    assert dynsec.password_matches(state, "d1", "p") and dynsec.password_matches(state, "admin", "adm")
    roles = {r["rolename"]: r["acls"] for r in state["roles"]}
    assert {"acltype": "publishClientSend", "topic": "iots6/d1/telemetry", "allow": True} in roles["device.d1"]
    assert {"acltype": "subscribePattern", "topic": "$share/+/iots6/#", "allow": True} in roles["svc.ingest"]
    assert not any(a["acltype"] == "publishClientSend" for a in roles["svc.operator"])


def test_the_registry_path_follows_the_kind(state, creds):
    """vm and aks register devices through the config server; the local kinds (built in or a registered stack)
    in the database."""
    vm = register(state, creds)
    assert vm.registry_via_api and vm.public()["device_registry"] == "config server API"
    local = environments.register_environment(
        state, "bench", "local", broker_host="127.0.0.1", broker_port=1883, config_url="http://127.0.0.1:8080"
    )
    assert not local.registry_via_api and local.public()["device_registry"] == "database"
    builtin = environments.active(load_settings(environ={"IOTCTL_STATE_DIR": str(state)}))
    assert builtin.name == "local" and not builtin.registry_via_api
