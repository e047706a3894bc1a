"""Each setting is defined once (iots6_platform.core.settings, iotctl.settings); everything else agrees with it.

Deployment targets that spell the variables themselves (the Ansible env-file templates and the migrate task, the
Helm chart's env helpers) are parsed: every variable they set is a defined setting of that service, every
required setting is set, and every value they spell literally (or take from the role's defaults / the chart's
values.yaml) passes the definition's own checks.  The native stack's and the Compose file's environments are
built from the definition; here they are read back from what the stack hands the processes and from the
rendered compose.yaml.  The docs' tables are generated (scripts/settings_docs.py) and must not be stale.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iots6_platform.core.settings import (
    SERVICES,
    ConfigError,
    ConfigServerSettings,
    IngestSettings,
    MigrateSettings,
    ServiceSettings,
    markdown_table,
    read_secrets,
)

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "infra" / "ansible" / "roles"
HELPERS = ROOT / "infra" / "helm" / "iots6" / "templates" / "_helpers.tpl"
VALUES = ROOT / "infra" / "helm" / "iots6" / "values.yaml"
JINJA_VAR = re.compile(r"^\{\{ *(\w+) *\}\}$")
HELM_VALUE = re.compile(r"^\{\{ *\.Values\.([\w.]+) *\| *quote *\}\}$")


# --------------------------------------------------------------------------------------- what the targets set


def _ansible_defaults() -> dict[str, object]:
    out: dict[str, object] = {}
    for file in ANSIBLE.glob("*/defaults/main.yml"):
        out.update(yaml.safe_load(file.read_text()) or {})
    return out


def _resolve_ansible(raw: str, defaults: dict[str, object]) -> str | None:
    """The value as the role renders it when it is a literal or one default variable; None when it is computed."""
    raw = raw.strip().strip('"')
    if "{{" not in raw:
        return raw
    match = JINJA_VAR.match(raw)
    if match and match[1] in defaults and "{{" not in str(defaults[match[1]]):
        return str(defaults[match[1]])
    return None


def ansible_envs() -> dict[str, dict[str, str | None]]:
    defaults = _ansible_defaults()
    envs: dict[str, dict[str, str | None]] = {}
    for service, file in (
        ("ingest", ANSIBLE / "iots6_ingest" / "templates" / "ingest.env.j2"),
        ("config-server", ANSIBLE / "iots6_config_server" / "templates" / "config-server.env.j2"),
    ):
        lines = [line for line in file.read_text().splitlines() if line and not line.startswith("#")]
        envs[service] = {}
        for line in lines:
            name, _, raw = line.partition("=")
            envs[service][name] = _resolve_ansible(raw, defaults)
    tasks = yaml.safe_load((ANSIBLE / "iots6_app" / "tasks" / "main.yml").read_text())
    (migrate,) = [t for t in tasks if "iots6-migrate" in str(t.get("ansible.builtin.command", ""))]
    envs["migrate"] = {k: _resolve_ansible(str(v), defaults) for k, v in migrate["environment"].items()}
    return envs


def _helm_value(path: str) -> str | None:
    node: object = yaml.safe_load(VALUES.read_text())
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return None if isinstance(node, dict | list) else str(node)


def helm_envs() -> dict[str, dict[str, str | None]]:
    text = HELPERS.read_text()
    envs: dict[str, dict[str, str | None]] = {}
    for service, helper in (("ingest", "ingest"), ("config-server", "configServer"), ("migrate", "migrate")):
        body = re.search(r'\{\{- define "iots6\.' + helper + r'\.env" -\}\}\n(.*?)\{\{- end \}\}', text, re.S)
        assert body, f"no iots6.{helper}.env helper in {HELPERS}"
        items = yaml.safe_load(re.sub(r"\{\{.*?\}\}", lambda m: f"'{m[0]}'", body[1]))
        env: dict[str, str | None] = {}
        for item in items:
            raw = item.get("value")
            if raw is None:  # valueFrom: the pod's name, a secret...
                env[item["name"]] = None
                continue
            raw = str(raw)
            match = HELM_VALUE.match(raw)
            env[item["name"]] = _helm_value(match[1]) if match else (None if "{{" in raw else raw)
        envs[service] = env
    return envs


TARGETS = {"ansible": ansible_envs, "helm": helm_envs}
CASES = [(target, service) for target in TARGETS for service in SERVICES]


@pytest.mark.parametrize(("target", "service"), CASES)
def test_a_deployment_sets_only_defined_settings_and_every_required_one(target, service):
    cls = SERVICES[service]
    env = TARGETS[target]()[service]
    unknown = sorted(set(env) - set(cls.variables()))
    assert not unknown, f"{target} sets {unknown} for {service}, which {cls.__name__} does not define"
    missing = sorted(cls.required_variables(present=env) - set(env))
    assert not missing, f"{target} does not set {missing}, required by {cls.__name__}"
    # Every value known before deployment time passes the definition's checks (type, range, choices, no password
    # in a URL); the definition names the variable if not.
    known = {cls.variables()[name]: value for name, value in env.items() if value is not None}
    assert cls.env(**known) == {name: value for name, value in env.items() if value is not None}


# ------------------------------------------------------------------------------------- the derived environments


def _check_derived(cls: type[ServiceSettings], env: dict[str, str]) -> None:
    """``env`` is exactly what the definition derives for its values, and the service would accept it."""
    assert set(env) <= set(cls.variables()), sorted(set(env) - set(cls.variables()))
    assert cls.required_variables(present=env) <= set(env)
    assert cls.env(**{cls.variables()[name]: value for name, value in env.items()}) == env
    cls.from_environ(env)  # the service's own parse, required settings and all (the files are read at start)


@pytest.mark.parametrize("engine", ["system", "embedded"])
def test_the_native_stack_hands_each_service_the_derived_environment(tmp_path, engine):
    from iotctl.settings import Settings
    from iotctl.stack.native import NativeStack

    specs = {spec.name: spec for spec in NativeStack(Settings(state_dir=tmp_path)).services(engine=engine)}
    assert set(specs) == {"ingest", "config-server"}
    for name, spec in specs.items():
        env = {k: v for k, v in spec.env.items() if k != "TMPDIR"}
        _check_derived(SERVICES[name], env)
    protocol = "3.1.1" if engine == "embedded" else "5"
    assert specs["ingest"].env["INGEST_MQTT_PROTOCOL"] == protocol
    assert specs["config-server"].env["CONFIG_SERVER_MQTT_PROTOCOL"] == protocol


def test_the_native_stack_never_passes_a_stray_platform_variable_from_the_shell(monkeypatch):
    from iotctl.stack import services as native_services

    for cls in SERVICES.values():
        monkeypatch.setenv(cls.prefix() + "STRAY", "from-the-shell")
    env = native_services._service_env({"INGEST_MQTT_HOST": "127.0.0.1"})
    assert env["INGEST_MQTT_HOST"] == "127.0.0.1"
    assert not [k for k in env if k.endswith("_STRAY")]


def test_the_compose_file_sets_the_derived_environment(tmp_path):
    from iotctl.stack.docker import DockerOptions, DockerStack, service_environments

    stack = DockerStack(tmp_path / "docker")
    stack.render(DockerOptions(topic_base="site-7", build_context=None))
    services = yaml.safe_load(stack.compose_file.read_text())["services"]
    derived = service_environments("site-7")
    assert set(derived) == set(SERVICES)
    for name, cls in SERVICES.items():
        env = services[name]["environment"]
        assert env == derived[name]
        _check_derived(cls, env)
        # Every *_FILE it names is a Compose secret of that service, mounted under /run/secrets.
        mounted = {f"/run/secrets/{s}" for s in services[name]["secrets"]}
        assert {v for k, v in env.items() if k.endswith("_FILE")} <= mounted
    assert services["ingest"]["environment"]["INGEST_TOPIC_BASE"] == "site-7"


def test_a_derived_environment_is_checked_where_it_is_built():
    with pytest.raises(KeyError, match="no setting `mqtt_hots`"):
        IngestSettings.env(mqtt_hots="127.0.0.1")
    with pytest.raises(ConfigError, match=r"^INGEST_HTTP_PORT=70000 is out of range; set a number from 0 to 65535\.$"):
        IngestSettings.env(http_port=70000)
    with pytest.raises(
        ConfigError, match=r"^MIGRATE_DATABASE_URL contains a password; move it to MIGRATE_DATABASE_PASSWORD_FILE\.$"
    ):
        MigrateSettings.env(database_url="postgresql://app:hunter2@db/iots6")
    # Paths become text, None leaves a setting out.
    assert ConfigServerSettings.env(admin_token_file=Path("/run/t"), mqtt_host=None) == {
        "CONFIG_SERVER_ADMIN_TOKEN_FILE": "/run/t"
    }


# -------------------------------------------------------------------------------------------------- secrets


def test_secrets_are_read_from_files_only(tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    settings = ConfigServerSettings.from_environ(
        {"CONFIG_SERVER_DATABASE_URL": "postgresql://app@db/iots6", "CONFIG_SERVER_ADMIN_TOKEN_FILE": str(token)}
    )
    assert read_secrets(settings) == {"database_password": None, "admin_token": "s3cret", "mqtt_password": None}
    assert "s3cret" not in repr(settings)
    # No setting holds a secret's value: each secret is a *_FILE.
    for cls in SERVICES.values():
        assert not [v for v in cls.variables() if re.search(r"PASSWORD|TOKEN", v) and not v.endswith("_FILE")]
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match=r"CONFIG_SERVER_ADMIN_TOKEN_FILE=`.*empty` is empty; write the secret"):
        read_secrets(settings.model_copy(update={"admin_token_file": str(empty)}))


def test_the_broker_password_is_required_only_with_a_broker():
    base = {"CONFIG_SERVER_DATABASE_URL": "postgresql://app@db/iots6", "CONFIG_SERVER_ADMIN_TOKEN_FILE": "/t"}
    ConfigServerSettings.from_environ(base)
    with pytest.raises(ConfigError, match=r"^CONFIG_SERVER_MQTT_PASSWORD_FILE is not set; point it at the svc"):
        ConfigServerSettings.from_environ({**base, "CONFIG_SERVER_MQTT_HOST": "broker"})


# ----------------------------------------------------------------------------------------------------- docs


def test_the_docs_tables_are_generated_from_the_definition():
    spec = importlib.util.spec_from_file_location("settings_docs", ROOT / "scripts" / "settings_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run `python scripts/settings_docs.py`"
    text = (ROOT / "docs" / "ingest.md").read_text()
    assert markdown_table(IngestSettings) in text and "`INGEST_BATCH_SIZE` |" in text


def test_the_module_prints_a_table():
    proc = subprocess.run(
        [sys.executable, "-m", "iots6_platform.core.settings", "--markdown", "migrate"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == markdown_table(MigrateSettings)
