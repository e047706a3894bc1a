"""The rendered Docker Compose stack: schema-valid, complete, secret-free; its broker probe authenticates.

No Docker engine runs here, so the stack is checked by validation: the Compose Specification JSON schema (the
copy PyPI's ``check-jsonschema`` vendors from compose-spec/compose-spec; docs/docker.md), structural checks,
a grep of every rendered file for every generated secret, and the rendered Mosquitto config plus the compose
healthcheck command run for real against a real Mosquitto.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import yaml

from iotctl import pki
from iotctl.broker import dynsec
from iotctl.broker.pwhash import hash_password
from iotctl.errors import InvalidInput
from iotctl.stack import procs
from iotctl.stack.docker import IMAGES, SCRAPE_TARGETS, SECRET_FILES, SERVICES, DockerOptions, DockerStack
from iotctl.stack.mosquitto import find_mosquitto


def _schema() -> dict:
    return json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())


@pytest.fixture
def stack(tmp_path) -> DockerStack:
    s = DockerStack(tmp_path / "docker")
    s.render()
    return s


def _compose(stack: DockerStack) -> dict:
    return yaml.safe_load(stack.compose_file.read_text())


def _env(stack: DockerStack) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in stack.env_file.read_text().splitlines() if line and line[0] != "#")
    return dict(pairs)


def test_compose_file_validates_against_the_compose_spec(stack):
    schema = _schema()
    assert schema["title"] == "Compose Specification"
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(_compose(stack))]
    assert not errors, errors
    # The schema is not a rubber stamp: a misspelt key is rejected.
    broken = _compose(stack)
    broken["services"]["ingest"]["depends_on"]["migrate"]["condition"] = "service_finished"
    assert list(validator.iter_errors(broken))


def test_every_service_network_volume_and_healthcheck(stack):
    doc = _compose(stack)
    services = doc["services"]
    assert set(services) == set(SERVICES)
    assert set(doc["networks"]) == {"iot_network"}
    assert set(doc["volumes"]) == {"pgdata", "grafana_data", "prometheus_data"}
    for name, svc in services.items():
        assert svc["networks"] == ["iot_network"], name
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"
    for name in ("mosquitto", "timescaledb", "grafana", "prometheus"):
        assert services[name]["image"] == IMAGES[name] and re.search(r":v?\d+\.\d+\.\d+", IMAGES[name])
    for name in ("ingest", "config-server", "migrate"):
        build = services[name]["build"]
        assert build["dockerfile"] == "services/Dockerfile" and build["target"] == name, build
        dockerfile = Path(build["context"], build["dockerfile"])
        # The target is a stage of that one Dockerfile (`FROM runtime AS <name>`), so the build cannot miss it.
        stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", dockerfile.read_text(), re.MULTILINE | re.IGNORECASE)
        assert name in stages, (name, stages)

    health = {n: " ".join(s["healthcheck"]["test"]) for n, s in services.items() if "healthcheck" in s}
    assert set(health) == set(SERVICES) - {"migrate"}, "every long-running service has a healthcheck"
    assert "mosquitto_sub" in health["mosquitto"] and " -E " in health["mosquitto"]
    assert "pg_isready -h 127.0.0.1" in health["timescaledb"]
    assert "http://127.0.0.1:8081/healthz" in health["ingest"]
    assert "http://127.0.0.1:8080/healthz" in health["config-server"]
    assert "/api/health" in health["grafana"]
    assert health["prometheus"] == "CMD wget -q -O /dev/null http://127.0.0.1:9090/-/healthy"
    probe = services["mosquitto"]["secrets"][0]
    assert (
        probe["source"] == "mqtt_probe"
        and "XDG_CONFIG_HOME=" + str(Path(probe["target"]).parent) in health["mosquitto"]
    )

    for name in ("ingest", "config-server"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["mosquitto"]["condition"] == deps["timescaledb"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["timescaledb"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    assert services["grafana"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_prometheus_service_and_its_scrape_config(stack):
    """The `prometheus` service: official image, data on a named volume, only loopback on the host, and a
    rendered scrape config whose targets are compose services on the ports where they serve /metrics."""
    doc = _compose(stack)
    services = doc["services"]
    prom = services["prometheus"]
    assert prom["image"].startswith("prom/prometheus:v") and prom["networks"] == ["iot_network"]
    assert "prometheus_data:/prometheus" in prom["volumes"]
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    assert "--storage.tsdb.path=/prometheus" in prom["command"]
    assert "user" not in prom, "the image's own user owns the /prometheus volume"
    assert prom["read_only"] is True and prom["ports"] == [
        "${IOTS6_PROMETHEUS_BIND:-127.0.0.1}:${IOTS6_PROMETHEUS_PORT:-9090}:9090"
    ]
    env = _env(stack)
    assert env["IOTS6_PROMETHEUS_BIND"] == "127.0.0.1" and env["IOTS6_PROMETHEUS_PORT"] == "9090"

    assert stat.S_IMODE(stack.prometheus_config.stat().st_mode) == 0o644
    config = yaml.safe_load(stack.prometheus_config.read_text())
    assert config["global"]["scrape_interval"] == "15s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"ingest", "config-server", "prometheus"}
    # The port each service listens on inside the network, from its own environment.
    listens = {
        "ingest": services["ingest"]["environment"]["INGEST_HTTP_PORT"],
        "config-server": services["config-server"]["environment"]["CONFIG_SERVER_PORT"],
    }
    for job, (service, port) in SCRAPE_TARGETS.items():
        (static,) = jobs[job]["static_configs"]
        (target,) = static["targets"]
        host, _, target_port = target.partition(":")
        assert host == service and host in services, target
        assert target_port == listens[service] == str(port), target
        assert jobs[job].get("metrics_path", "/metrics") == "/metrics"
        assert services[service]["networks"] == prom["networks"]
    # Anything that looks like credentials has no place in a file without a secret.
    text = stack.prometheus_config.read_text()
    for word in ("password", "bearer", "authorization", "basic_auth", "credentials"):
        assert word not in text.lower(), word


def test_scrape_interval_is_an_option(tmp_path):
    stack = DockerStack(tmp_path / "docker")
    stack.render(DockerOptions(scrape_interval_s=5))
    config = yaml.safe_load(stack.prometheus_config.read_text())["global"]
    assert config["scrape_interval"] == "5s" and config["scrape_timeout"] == "5s"
    with pytest.raises(InvalidInput, match="`scrape_interval_s`"):
        stack.render(DockerOptions(scrape_interval_s=0))
    with pytest.raises(InvalidInput, match="`prometheus_port`"):
        stack.render(DockerOptions(prometheus_port=0))


def test_service_environment_interface(stack):
    services = _compose(stack)["services"]
    ingest = services["ingest"]["environment"]
    assert ingest["INGEST_MQTT_USERNAME"] == "svc.ingest"
    assert ingest["INGEST_DATABASE_URL"] == "postgresql://iots6@timescaledb:5432/iots6"
    assert set(ingest) >= {
        "INGEST_MQTT_HOST",
        "INGEST_MQTT_PORT",
        "INGEST_MQTT_PASSWORD_FILE",
        "INGEST_DATABASE_PASSWORD_FILE",
        "INGEST_TOPIC_BASE",
        "INGEST_HTTP_PORT",
    }
    config = services["config-server"]["environment"]
    assert set(config) >= {
        "CONFIG_SERVER_BIND",
        "CONFIG_SERVER_PORT",
        "CONFIG_SERVER_DATABASE_URL",
        "CONFIG_SERVER_DATABASE_PASSWORD_FILE",
        "CONFIG_SERVER_ADMIN_TOKEN_FILE",
        "CONFIG_SERVER_MQTT_HOST",
        "CONFIG_SERVER_MQTT_PORT",
        "CONFIG_SERVER_MQTT_USERNAME",
        "CONFIG_SERVER_MQTT_PASSWORD_FILE",
        "CONFIG_SERVER_TOPIC_BASE",
    }
    top_secrets = _compose(stack)["secrets"]
    for name, svc in services.items():
        mounted = {s if isinstance(s, str) else s["source"] for s in svc.get("secrets", [])}
        for key, value in svc.get("environment", {}).items():
            if "PASSWORD" in key or "TOKEN" in key:
                # Either a file under /run/secrets that this service mounts, or (Grafana) an .env reference.
                if key.endswith("_FILE"):
                    assert value.startswith("/run/secrets/") and Path(value).name in mounted, (name, key)
                else:
                    assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", value), (name, key, "must reference .env")
    for spec in top_secrets.values():
        assert spec["file"].startswith("./secrets/")
        assert (stack.directory / spec["file"]).is_file()


def test_every_interpolated_variable_is_defined_in_env(stack):
    env = _env(stack)
    text = stack.compose_file.read_text()
    for name, default in re.findall(r"\$\{(\w+)(:-[^}]*)?", text):
        assert name in env or default, f"${{{name}}} is neither in .env nor defaulted"
    assert env["IOTS6_UID"] == str(os.getuid()) and env["IOTS6_MQTT_PORT"] == "18830"


def test_no_secret_outside_the_0600_files(stack):
    secrets = {}
    for name, filename in SECRET_FILES.items():
        path = stack.secrets_dir / filename
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        if name != "mqtt-probe":
            secrets[name] = path.read_text().strip()
    assert len(set(secrets.values())) == len(secrets) and all(len(v) >= 24 for v in secrets.values())
    assert stat.S_IMODE(stack.secrets_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(stack.env_file.stat().st_mode) == 0o600
    allowed = {stack.env_file, *stack.secrets_dir.iterdir()}
    checked = 0
    for path in stack.directory.rglob("*"):
        if path.is_file() and path not in allowed:
            text = path.read_bytes()
            for name, value in secrets.items():
                assert value.encode() not in text, f"secret `{name}` leaked into {path}"
            checked += 1
    assert checked >= 10
    assert stat.S_IMODE(stack.broker_state_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(stack.mosquitto_data_dir.stat().st_mode) == 0o700
    # The .env holds exactly Grafana's two passwords, the ones in secrets/.
    env = _env(stack)
    assert env["IOTS6_DB_PASSWORD"] == secrets["db"]
    assert env["IOTS6_GRAFANA_ADMIN_PASSWORD"] == secrets["grafana-admin"]


def test_broker_accounts_match_the_secret_files(stack):
    state = dynsec.load_state(stack.broker_state_file)
    for user, secret in (
        ("admin", "mqtt-admin"),
        ("svc.ingest", "mqtt-ingest"),
        ("svc.config", "mqtt-config"),
        ("svc.operator", "mqtt-operator"),
    ):
        assert dynsec.password_matches(state, user, stack.secret_file(secret).read_text().strip()), user
    assert state["defaultACLAccess"] == dynsec.DEFAULT_ACL_ACCESS
    probe = stack.secret_file("mqtt-probe").read_text().splitlines()
    assert probe == ["-u svc.operator", "-P " + stack.secret_file("mqtt-operator").read_text().strip()]
    conf = (stack.mosquitto_config_dir / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and f"plugin {dynsec.IMAGE_PLUGIN_PATH}" in conf
    assert "plugin_opt_config_file /mosquitto/data/dynamic-security.json" in conf
    assert "password_file" not in conf and "acl_file" not in conf
    assert "listener 1883 0.0.0.0" in conf and "certfile" not in conf and "\nuser " not in conf
    # inside the container the plaintext listener serves the Compose network; on the host only loopback
    assert "${IOTS6_MQTT_BIND:-127.0.0.1}:${IOTS6_MQTT_PORT:-1883}:1883" in stack.compose_file.read_text()
    assert _env(stack)["IOTS6_MQTT_BIND"] == "127.0.0.1"


def test_render_is_idempotent_and_keeps_secrets(stack):
    before = {p.name: p.read_text() for p in stack.secrets_dir.iterdir()}
    state = stack.broker_state_file.read_text()
    stack.render()
    assert {p.name: p.read_text() for p in stack.secrets_dir.iterdir()} == before
    assert stack.broker_state_file.read_text() == state  # the broker's own from the first start on


def test_a_stack_rendered_before_dynamic_security_keeps_its_device_passwords(tmp_path):
    stack = DockerStack(tmp_path / "docker")
    config = stack.mosquitto_config_dir
    config.mkdir(parents=True)
    old = {"kitchen-1": {"role": "device", "hash": hash_password("kitchen-password"), "created": "2024-01-01"}}
    (config / "accounts.json").write_text(json.dumps(old))
    (config / "passwd").write_text("kitchen-1:" + old["kitchen-1"]["hash"] + "\n")
    (config / "acl").write_text("user kitchen-1\n")
    stack.render()
    state = dynsec.load_state(stack.broker_state_file)
    assert dynsec.password_matches(state, "kitchen-1", "kitchen-password")
    client = next(c for c in state["clients"] if c["username"] == "kitchen-1")
    assert client["clientid"] == "kitchen-1" and client["roles"] == [{"rolename": "device.kitchen-1"}]
    assert dynsec.password_matches(state, "svc.ingest", stack.secret_file("mqtt-ingest").read_text().strip())
    assert sorted(p.name for p in config.iterdir()) == [
        "accounts.json.pre-dynsec",
        "acl.pre-dynsec",
        "mosquitto.conf",
        "passwd.pre-dynsec",
    ]


def test_tls_listener_is_off_by_default_and_gets_a_certificate_from_the_stacks_ca(tmp_path):
    stack = DockerStack(tmp_path / "docker")
    stack.render()
    assert "8883" not in (stack.mosquitto_config_dir / "mosquitto.conf").read_text()
    assert not stack.ca_file.exists()
    stack.render(DockerOptions(mqtt_tls=True, mqtt_tls_hosts=("pi.lan", "192.168.1.20")))
    certs = stack.directory / "mosquitto" / "certs"
    described = pki.describe(certs / "server.crt")
    assert {"localhost", "pi.lan", "127.0.0.1", "192.168.1.20"} <= set(described["names"]), described
    assert stat.S_IMODE((certs / "server.key").stat().st_mode) == 0o600
    assert _env(stack)["IOTS6_MQTT_TLS_BIND"] == "0.0.0.0"
    conf = (stack.mosquitto_config_dir / "mosquitto.conf").read_text()
    assert "listener 8883 0.0.0.0" in conf and "certfile /mosquitto/certs/server.crt" in conf
    mosquitto = _compose(stack)["services"]["mosquitto"]
    assert any(p.endswith(":8883") for p in mosquitto["ports"])
    assert "./mosquitto/certs:/mosquitto/certs:ro" in mosquitto["volumes"]
    validator = jsonschema.Draft202012Validator(_schema())
    assert not list(validator.iter_errors(_compose(stack)))


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(InvalidInput, match="`mqtt_port`"):
        DockerStack(tmp_path).render(DockerOptions(mqtt_port=70000))
    with pytest.raises(InvalidInput, match="project name"):
        DockerStack(tmp_path).render(DockerOptions(project="My Stack"))


def test_rendered_broker_config_and_healthcheck_run_on_a_real_mosquitto(stack, tmp_path):
    """Run the rendered mosquitto.conf (container paths mapped to a temp dir) on a real broker, then the
    compose healthcheck command itself: it passes with the probe login and fails with a wrong password."""
    mosquitto = find_mosquitto()
    if mosquitto is None or shutil.which("mosquitto_sub") is None:
        pytest.fail("`mosquitto`/`mosquitto_sub` not found; run `make install-system`.")
    root = tmp_path / "container"
    shutil.copytree(stack.mosquitto_config_dir, root / "config")
    shutil.copytree(stack.mosquitto_data_dir, root / "data")
    port = procs.free_port()
    conf = (root / "config" / "mosquitto.conf").read_text().replace("/mosquitto/", f"{root}/")
    conf = conf.replace(dynsec.IMAGE_PLUGIN_PATH, dynsec.require_plugin())  # the image's path -> Debian's
    conf = conf.replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
    if os.geteuid() == 0:  # in the container it runs as the stack owner; here, as root, it must not drop to `mosquitto`
        conf = "user root\n" + conf
    (root / "config" / "mosquitto.conf").write_text(conf)
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    shutil.copy(stack.secret_file("mqtt-probe"), probe_dir / "mosquitto_sub")

    test = _compose(stack)["services"]["mosquitto"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    command = re.sub(r"XDG_CONFIG_HOME=\S+", f"XDG_CONFIG_HOME={probe_dir}", test[1]).replace("-p 1883", f"-p {port}")

    proc = procs.spawn([mosquitto, "-c", str(root / "config" / "mosquitto.conf")], log=tmp_path / "mosquitto.log")
    try:
        procs.wait_for_port("127.0.0.1", port, 10, "mosquitto", tmp_path / "mosquitto.log", proc.pid)
        ok = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=15)
        assert ok.returncode == 0, ok.stderr + (tmp_path / "mosquitto.log").read_text()
        (probe_dir / "mosquitto_sub").write_text("-u svc.operator\n-P wrong-password\n")
        refused = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=15)
        assert refused.returncode != 0
        # `stack up --docker`'s last step, against this broker: the seeded state already is what iotctl expects
        stack.broker_state_file.write_text((root / "data" / dynsec.STATE_FILE).read_text())
        assert stack.ensure_broker_identities(port) == []
    finally:
        procs.stop_pid(proc.pid)
