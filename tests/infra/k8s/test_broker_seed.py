"""The broker pod's dynamic-security bootstrap, run for real: the chart's rendered mosquitto.conf, dynsec-init.sh
and dynsec-seed.sh (from its ConfigMap) with Debian's Mosquitto 2.0 and its dynamic security plugin, in a temp
dir on free loopback ports. Only the pod's paths and the listeners' bind address are rewritten for this host
(/mosquitto/... -> the temp dir, listeners -> 127.0.0.1); as root, everything runs as the `mosquitto` user, as the
pod runs everything as one non-root uid.

Shown here: the admin client is created from the secret on first start and kept on later starts; the service
clients get exactly their ACLs; a rotated password is applied without a restart; identities survive a broker
restart; the readiness probe's login works; devices reach the TLS listener with the environment CA.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from iotctl import pki
from iotctl.stack.procs import free_port, port_open

from .conftest import render_env

DEBIAN_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"


def _plugin() -> str:
    for candidate in (DEBIAN_PLUGIN, "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so"):
        if Path(candidate).exists():
            return candidate
    pytest.fail(
        "Mosquitto's dynamic security plugin is missing; run `make install-system` (apt-get install mosquitto)."
    )


class Pod:
    """The broker pod's three containers as local processes, from the rendered chart."""

    def __init__(self, root: Path, port: int, tls_port: int):
        self.root, self.port, self.tls_port = root, port, tls_port
        docs = render_env(
            "dev",
            mosquitto={"internalPort": port, "tlsPort": tls_port, "dynsecPlugin": _plugin(), "seedIntervalSeconds": 1},
        )
        (config,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "iots6-mosquitto"]
        (sts,) = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "iots6-mosquitto"]
        pod = sts["spec"]["template"]["spec"]
        self.init_env = {e["name"]: e["value"] for e in pod["initContainers"][0]["env"]}
        containers = {c["name"]: c for c in pod["containers"]}
        self.seed_env = {e["name"]: e["value"] for e in containers["dynsec-seed"]["env"]}
        self.readiness = containers["mosquitto"]["readinessProbe"]["exec"]["command"]
        self.probe_env = {e["name"]: e["value"] for e in containers["mosquitto"]["env"]}
        for sub in ("data", "certs", "secrets", "seed", "probe", "scripts"):
            (root / sub).mkdir(parents=True)
        conf = config["data"]["mosquitto.conf"]
        conf = conf.replace("/mosquitto/data/", f"{root}/data/").replace("/mosquitto/certs/", f"{root}/certs/")
        conf = re.sub(r"^listener (\d+)$", r"listener \1 127.0.0.1", conf, flags=re.M)
        (root / "mosquitto.conf").write_text(conf)
        for name in ("dynsec-init.sh", "dynsec-seed.sh"):
            (root / "scripts" / name).write_text(config["data"][name])
        # The TLS listener's certificate, issued by an environment CA as `iotctl` does (tls-broker-crt/-key).
        self.ca = pki.ensure_ca(root / "ca")
        server = pki.issue_server_cert(
            self.ca, root / "ca", "broker", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
        )
        shutil.copy(server.cert, root / "certs" / "tls.crt")
        shutil.copy(server.key, root / "certs" / "tls.key")
        self.user = "mosquitto" if os.geteuid() == 0 else None
        self.broker: subprocess.Popen | None = None

    def paths(self, env: dict[str, str]) -> dict[str, str]:
        """The pod's mount points, moved into the temp dir."""
        mapping = {
            "/mosquitto/data": self.root / "data",
            "/run/secrets/iots6": self.root / "secrets",
            "/run/iots6/seed": self.root / "seed",
            "/run/iots6/probe": self.root / "probe",
        }
        out = {}
        for key, value in env.items():
            for mount, local in mapping.items():
                if value.startswith(mount):
                    value = str(local) + value[len(mount) :]
            out[key] = value
        return out

    def write_secrets(self, **passwords: str) -> None:
        for name, value in passwords.items():
            (self.root / "secrets" / f"{name}-password").write_text(value)
        self._own()

    def _own(self) -> None:
        if self.user:
            uid, gid = pwd.getpwnam(self.user)[2:4]
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, uid, gid)

    def run(self, script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        self._own()
        return subprocess.run(
            ["/bin/sh", str(self.root / "scripts" / script)],
            env={"PATH": os.environ["PATH"], **self.paths(env)},
            user=self.user,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def seed(self) -> subprocess.CompletedProcess:
        return self.run("dynsec-seed.sh", {**self.seed_env, "IOTS6_SEED_ONCE": "1"})

    def start(self) -> None:
        self._own()
        self.broker = subprocess.Popen(
            [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(self.root / "mosquitto.conf")],
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port):
            assert self.broker.poll() is None, "mosquitto exited; see its config in " + str(self.root)
            assert time.monotonic() < deadline, "mosquitto did not listen within 10 s"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.broker and self.broker.poll() is None:
            self.broker.terminate()
            self.broker.wait(timeout=10)


@pytest.fixture
def pod():
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("`mosquitto` not found; run `make install-system`.")
    for tool in ("mosquitto_ctrl", "mosquitto_pub", "mosquitto_sub"):
        if shutil.which(tool) is None:
            pytest.fail(f"`{tool}` not found; run `make install-system` (apt-get install mosquitto mosquitto-clients).")
    # pytest's temp root is private to root; the `mosquitto` user must reach this one.
    root = Path(tempfile.mkdtemp(prefix="iotctl-test-broker-pod-"))
    os.chmod(root, 0o755)
    pod = Pod(root / "pod", free_port(), free_port())
    try:
        yield pod
    finally:
        pod.stop()
        shutil.rmtree(root, ignore_errors=True)


def _password() -> str:
    # Key Vault values are arbitrary printable text: include the characters that need escaping on the way.
    return f'p"w\\ {uuid.uuid4().hex}'


def _connect(port: int, user: str, password: str, tls: ssl.SSLContext | None = None) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    if tls:
        client.tls_set_context(tls)
    result = {}
    client.on_connect = lambda c, u, f, rc, p=None: result.setdefault("rc", rc)
    client.connect("127.0.0.1", port)
    client.loop_start()
    deadline = time.monotonic() + 5
    while "rc" not in result and time.monotonic() < deadline:
        time.sleep(0.02)
    if result.get("rc") is None or result["rc"].is_failure:
        client.loop_stop()
        raise PermissionError(f"{user}: {result.get('rc')}")
    return client


def _receives(pod: Pod, reader: tuple[str, str], writer: tuple[str, str], topic: str, retain: bool = False) -> bool:
    """Does `reader`, subscribed to <base>/#, receive what `writer` publishes on `topic`?"""
    got = []
    sub = _connect(pod.port, *reader)
    sub.on_message = lambda c, u, m: got.append(m.topic)
    sub.subscribe("iots6/#", qos=1)
    time.sleep(0.2)
    pub = _connect(pod.port, *writer)
    pub.publish(topic, b"{}", qos=1, retain=retain).wait_for_publish(3)
    deadline = time.monotonic() + 2
    while topic not in got and time.monotonic() < deadline:
        time.sleep(0.05)
    if retain:  # clear the retained message
        pub.publish(topic, b"", qos=1, retain=True).wait_for_publish(3)
    for client in (sub, pub):
        client.disconnect()
        client.loop_stop()
    return topic in got


def test_first_start_seeds_the_service_clients_with_their_acls(pod):
    secrets = {"admin": _password(), "ingest": _password(), "config": _password(), "operator": _password()}
    pod.write_secrets(**secrets)
    init = pod.run("dynsec-init.sh", pod.init_env)
    assert init.returncode == 0 and "created" in init.stdout, init.stderr
    pod.start()
    seeded = pod.seed()
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    device = uuid.uuid4().hex[:8]
    ingest, config, operator = (
        ("svc.ingest", secrets["ingest"]),
        ("svc.config", secrets["config"]),
        (
            "svc.operator",
            secrets["operator"],
        ),
    )
    # svc.config publishes retained config notices; svc.ingest and svc.operator read everything under iots6/.
    assert _receives(pod, ingest, config, f"iots6/{device}/config", retain=True)
    assert _receives(pod, operator, config, f"iots6/{device}/config", retain=True)
    # ... and nothing else: svc.config may not write telemetry, svc.ingest may not publish at all.
    assert not _receives(pod, operator, config, f"iots6/{device}/telemetry")
    assert not _receives(pod, operator, ingest, f"iots6/{device}/config")
    with pytest.raises(PermissionError):
        _connect(pod.port, "svc.ingest", "wrong")
    # The broker container's readiness probe, exactly as rendered, with the login the sidecar wrote.
    probe_env = {**os.environ, **pod.paths(pod.probe_env)}
    probe = subprocess.run(pod.readiness, env=probe_env, capture_output=True, text=True, timeout=10, check=False)
    assert probe.returncode == 0 and "denied" not in probe.stderr, probe.stderr
    assert (pod.root / "probe" / "mosquitto_sub").stat().st_mode & 0o077 == 0
    # No password is left in the sidecar's scratch directory beyond its 0600 login files.
    for path in (pod.root / "seed").rglob("*"):
        assert path.is_dir() or path.stat().st_mode & 0o077 == 0, path


def test_rotation_restart_and_a_second_start(pod):
    secrets = {"admin": _password(), "ingest": _password(), "config": _password(), "operator": _password()}
    pod.write_secrets(**secrets)
    assert pod.run("dynsec-init.sh", pod.init_env).returncode == 0
    pod.start()
    assert pod.seed().returncode == 0
    # Rotation: new ingest and admin passwords in "Key Vault"; the next pass applies both, no restart.
    rotated = {"ingest": _password(), "admin": _password()}
    pod.write_secrets(**rotated)
    again = pod.seed()
    assert again.returncode == 0, again.stdout + again.stderr
    with pytest.raises(PermissionError):
        _connect(pod.port, "svc.ingest", secrets["ingest"])
    _connect(pod.port, "svc.ingest", rotated["ingest"]).loop_stop()
    # A restarted broker keeps every identity; a second init leaves the plugin's state alone.
    pod.stop()
    state = (pod.root / "data" / "dynamic-security.json").read_text()
    second = pod.run("dynsec-init.sh", pod.init_env)
    assert second.returncode == 0 and "keeping" in second.stdout
    assert (pod.root / "data" / "dynamic-security.json").read_text() == state
    pod.start()
    _connect(pod.port, "svc.ingest", rotated["ingest"]).loop_stop()
    _connect(pod.port, "svc.config", secrets["config"]).loop_stop()
    assert rotated["admin"] not in state and secrets["ingest"] not in state  # hashes only


def test_devices_reach_the_tls_listener_with_the_environment_ca(pod):
    secrets = {"admin": _password(), "ingest": _password(), "config": _password(), "operator": _password()}
    pod.write_secrets(**secrets)
    assert pod.run("dynsec-init.sh", pod.init_env).returncode == 0
    pod.start()
    assert pod.seed().returncode == 0
    context = ssl.create_default_context(cafile=str(pod.ca.cert))
    _connect(pod.tls_port, "svc.operator", secrets["operator"], tls=context).loop_stop()
    with pytest.raises((PermissionError, OSError, ssl.SSLError)):  # plaintext on the TLS port goes nowhere
        _connect(pod.tls_port, "svc.operator", secrets["operator"])
