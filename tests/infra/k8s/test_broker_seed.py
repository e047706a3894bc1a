"""The broker pod's dynamic-security bootstrap, run for real: the chart's rendered mosquitto.conf, dynsec-init.sh,
dynsec-seed.sh and dynsec-platform.json (from its ConfigMap) with Debian's Mosquitto 2.0 and its dynamic security
plugin, in a temp dir on free loopback ports. The scripts run under BusyBox sh with only BusyBox applets and the
Mosquitto clients on PATH, as in the eclipse-mosquitto (Alpine) image. Only the pod's paths and the listeners' bind
address are rewritten for this host (/mosquitto/... -> the temp dir, listeners -> 127.0.0.1); as root,
everything runs as the `mosquitto` user, as the pod runs everything as one non-root uid.

Shown here: the chart's copy of the platform definition is the one iotctl generates (iotctl/broker/dynsec.py);
after the seed the broker holds exactly what the native stack's broker holds (iotctl's own ensure_platform finds
nothing to change: default access, admin role, service roles with the ingest's shared subscription, service
clients); the ingest shares a subscription; a device provisioned by iotctl reads only its own config; a broker
left by an older chart (roles `ingest`, `config`, `operator`, a hand-added ACL) is brought to the definition; a
pass that changes nothing disconnects nobody and a rotated password disconnects only its client; identities
survive a restart; the readiness probe's login works; devices reach the TLS listener with the environment CA.
"""

from __future__ import annotations

import json
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
from iotctl.broker import dynsec
from iotctl.broker.identities import DynsecIdentities
from iotctl.endpoints import MqttEndpoint
from iotctl.stack.procs import free_port, port_open

from .conftest import ROOT, render_env

DEBIAN_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
PLATFORM_FILE = ROOT / "infra" / "helm" / "iots6" / "files" / "mosquitto" / "dynsec-platform.json"
#: BusyBox applets the pod's scripts may use (all in Alpine's BusyBox); anything else is "not found", as it would
#: be in the image.
APPLETS = ("sh", "cat", "cp", "mv", "rm", "mkdir", "chmod", "sed", "grep", "sort", "tr", "sha256sum", "date")
APPLETS += ("sleep", "kill", "touch", "find", "test", "[", "printf", "echo", "head")
MOSQUITTO_CLIENTS = ("mosquitto_ctrl", "mosquitto_pub", "mosquitto_sub")
SERVICES = ("ingest", "config", "operator")


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
        for sub in ("data", "certs", "secrets", "seed", "probe", "scripts", "bin"):
            (root / sub).mkdir(parents=True)
        conf = config["data"]["mosquitto.conf"]
        conf = conf.replace("/mosquitto/data/", f"{root}/data/").replace("/mosquitto/certs/", f"{root}/certs/")
        conf = re.sub(r"^listener (\d+)$", r"listener \1 127.0.0.1", conf, flags=re.M)
        (root / "mosquitto.conf").write_text(conf)
        # The scripts volume, as the StatefulSet mounts it from the ConfigMap.
        (scripts,) = [v for v in pod["volumes"] if v["name"] == "scripts"]
        for item in scripts["configMap"]["items"]:
            (root / "scripts" / item["path"]).write_text(config["data"][item["key"]])
        # The image's PATH: BusyBox applets and the Mosquitto clients, nothing else.
        busybox = shutil.which("busybox")
        for applet in APPLETS:
            (root / "bin" / applet).symlink_to(busybox)
        for client in MOSQUITTO_CLIENTS:
            (root / "bin" / client).symlink_to(shutil.which(client))
        # The TLS listener's certificate, issued by an environment CA as `iotctl` does (tls-broker-crt/-key).
        self.ca = pki.ensure_ca(root / "ca")
        server = pki.issue_server_cert(
            self.ca, root / "ca", "broker", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
        )
        shutil.copy(server.cert, root / "certs" / "tls.crt")
        shutil.copy(server.key, root / "certs" / "tls.key")
        self.user = "mosquitto" if os.geteuid() == 0 else None
        self.broker: subprocess.Popen | None = None
        self.secrets: dict[str, str] = {}

    def paths(self, env: dict[str, str]) -> dict[str, str]:
        """The pod's mount points, moved into the temp dir."""
        mapping = {
            "/mosquitto/data": self.root / "data",
            "/opt/iots6": self.root / "scripts",
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
        self.secrets.update(passwords)
        self._own()

    def _own(self) -> None:
        if self.user:
            uid, gid = pwd.getpwnam(self.user)[2:4]
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, uid, gid, follow_symlinks=False)

    def run(self, script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        self._own()
        return subprocess.run(
            [str(self.root / "bin" / "sh"), str(self.root / "scripts" / script)],
            env={"PATH": str(self.root / "bin"), **self.paths(env)},
            user=self.user,
            capture_output=True,
            text=True,
            timeout=90,
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

    def boot(self, seed: bool = True) -> None:
        """First start of the pod: init container, broker, one seed pass (all must succeed)."""
        self.write_secrets(**{name: _password() for name in ("admin", *SERVICES)})
        init = self.run("dynsec-init.sh", self.init_env)
        assert init.returncode == 0 and "created" in init.stdout, init.stderr
        self.start()
        if seed:
            seeded = self.seed()
            assert seeded.returncode == 0, seeded.stdout + seeded.stderr

    def admin(self) -> dynsec.DynsecAdmin:
        return dynsec.DynsecAdmin(MqttEndpoint("127.0.0.1", self.port, "admin", self.secrets["admin"]))

    def login(self, service: str) -> tuple[str, str]:
        return f"svc.{service}", self.secrets[service]

    def stop(self) -> None:
        if self.broker and self.broker.poll() is None:
            self.broker.terminate()
            self.broker.wait(timeout=10)


@pytest.fixture
def pod():
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("`mosquitto` not found; run `make install-system`.")
    for tool in MOSQUITTO_CLIENTS:
        if shutil.which(tool) is None:
            pytest.fail(f"`{tool}` not found; run `make install-system` (apt-get install mosquitto mosquitto-clients).")
    if shutil.which("busybox") is None:
        pytest.fail("`busybox` not found; run `make install-system` (apt-get install busybox): the pod's shell.")
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


class Session:
    """A connected paho client that records its messages, SUBACKs and disconnections."""

    def __init__(self, port: int, user: str, password: str, tls: ssl.SSLContext | None = None, client_id: str = ""):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, password)
        if tls:
            self.client.tls_set_context(tls)
        self.messages: list[str] = []
        self.subacks: dict[int, list] = {}
        self.disconnects = 0
        result = {}
        self.client.on_connect = lambda c, u, f, rc, p=None: result.setdefault("rc", rc)
        self.client.on_message = lambda c, u, m: self.messages.append(m.topic)
        self.client.on_subscribe = lambda c, u, mid, rcs, p=None: self.subacks.setdefault(mid, list(rcs))
        self.client.on_disconnect = self._on_disconnect
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        _wait(lambda: "rc" in result, 5)
        if result.get("rc") is None or result["rc"].is_failure:
            self.client.loop_stop()
            raise PermissionError(f"{user}: {result.get('rc')}")

    def _on_disconnect(self, *_args) -> None:
        self.disconnects += 1

    def subscribe(self, topic: str) -> bool:
        """True when the broker grants the subscription."""
        _rc, mid = self.client.subscribe(topic, qos=1)
        _wait(lambda: mid in self.subacks, 5)
        return not self.subacks[mid][0].is_failure

    def publish(self, topic: str, retain: bool = False) -> None:
        self.client.publish(topic, b"{}", qos=1, retain=retain).wait_for_publish(3)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _receives(pod: Pod, reader: tuple[str, str], writer: tuple[str, str], topic: str, retain: bool = False) -> bool:
    """Does `reader`, subscribed to <base>/#, receive what `writer` publishes on `topic`?"""
    sub = Session(pod.port, *reader)
    sub.subscribe("iots6/#")
    pub = Session(pod.port, *writer)
    pub.publish(topic, retain=retain)
    got = _wait(lambda: topic in sub.messages, 2)
    if retain:  # clear the retained message
        pub.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(3)
    sub.close()
    pub.close()
    return got


def _assert_holds_the_platform_definition(pod: Pod) -> None:
    """The broker holds what iotctl's native stack makes: its own ensure_platform finds nothing to change, and every
    role, client and the default access read back equal to the definition."""
    definition = dynsec.platform_definition("iots6")
    with pod.admin() as admin:
        assert dynsec.ensure_platform(admin, "iots6") == []
        for name, acls in dynsec.platform_roles("iots6").items():
            have = {(a["acltype"], a["topic"], a["allow"]) for a in admin.get_role(name)["acls"]}
            assert have == {(a["acltype"], a["topic"], a["allow"]) for a in acls}, name
        for client in definition["clients"]:
            got = admin.get_client(client["username"])
            assert [r["rolename"] for r in got["roles"]] == [client["rolename"]] and not got.get("disabled")
        default = admin.execute([{"command": "getDefaultACLAccess"}])[0]["data"]["acls"]
        assert {a["acltype"]: a["allow"] for a in default} == dynsec.DEFAULT_ACL_ACCESS
        for legacy in ("ingest", "config", "operator"):
            assert admin.get_role(legacy) is None


def test_the_chart_copy_is_the_platform_definition():
    """One definition: the committed copy is what iotctl generates, and the ConfigMap carries it with the
    release's topic base."""
    assert PLATFORM_FILE.read_text() == dynsec.platform_json(), (
        f"{PLATFORM_FILE.relative_to(ROOT)} differs from iotctl/broker/dynsec.py; regenerate it: "
        f"python -m iotctl.broker.dynsec > {PLATFORM_FILE.relative_to(ROOT)}"
    )
    for base in ("iots6", "plant-7"):
        docs = render_env("dev", topicBase=base)
        (config,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "iots6-mosquitto"]
        rendered = config["data"]["dynsec-platform.json"]
        assert rendered == dynsec.platform_json().replace(dynsec.TOPIC_BASE_PLACEHOLDER, base)
        parsed = json.loads(rendered)
        assert {k: v for k, v in parsed.items() if k != "about"} == dynsec.platform_definition(base)
    # The definition is what the native and Docker stacks seed (dynsec.seed_state), record for record.
    native = dynsec.seed_state("admin-pw", "iots6", {service: "pw" for service in SERVICES})
    definition = dynsec.platform_definition("iots6")
    assert {a["acltype"]: a["allow"] for a in definition["defaultACLAccess"]} == native["defaultACLAccess"]
    assert [(r["rolename"], r["acls"]) for r in native["roles"]] == sorted(
        (
            name,
            [{k: v for k, v in a.items() if k != "rolename"} for a in definition["roleACLs"] if a["rolename"] == name],
        )
        for name in {a["rolename"] for a in definition["roleACLs"]}
    )
    services = {
        c["username"]: [r["rolename"] for r in c["roles"]] for c in native["clients"] if c["username"] != "admin"
    }
    assert services == {c["username"]: [c["rolename"]] for c in definition["clients"]}
    # The ingest may share its subscription; the chart's seed would refuse `ingest.shareGroup` otherwise.
    assert {"rolename": "svc.ingest", "acltype": "subscribePattern", "topic": "$share/+/iots6/#", "allow": True} in (
        dynsec.platform_definition("iots6")["roleACLs"]
    )


def test_first_start_seeds_exactly_the_platform_definition(pod):
    pod.boot()
    _assert_holds_the_platform_definition(pod)
    device = uuid.uuid4().hex[:8]
    ingest, config, operator = (pod.login(s) for s in ("ingest", "config", "operator"))
    # svc.config publishes retained config notices; svc.ingest and svc.operator read everything under iots6/.
    assert _receives(pod, ingest, config, f"iots6/{device}/config", retain=True)
    assert _receives(pod, operator, config, f"iots6/{device}/config", retain=True)
    # ... and nothing else: svc.config may not write telemetry, svc.ingest may not publish at all.
    assert not _receives(pod, operator, config, f"iots6/{device}/telemetry")
    assert not _receives(pod, operator, ingest, f"iots6/{device}/config")
    with pytest.raises(PermissionError):
        Session(pod.port, "svc.ingest", "wrong")
    # Two ingest workers share one subscription (ingest.shareGroup); a device provisioned by iotctl publishes to it.
    workers = [Session(pod.port, *ingest, client_id=f"iots6-ingest-{i}") for i in (0, 1)]
    assert all(w.subscribe("$share/iots6-ingest/iots6/#") for w in workers)
    with DynsecIdentities(pod.admin(), "iots6") as identities:
        identities.provision(device, "device-password")
    sensor = Session(pod.port, device, "device-password", client_id=device)
    for _ in range(4):
        sensor.publish(f"iots6/{device}/telemetry")
    assert _wait(lambda: sum(len(w.messages) for w in workers) == 4, 5)
    assert all(w.messages for w in workers)  # shared: each worker got some, none got all
    # The device reads only its own config topic (default access: nothing else may be subscribed).
    assert sensor.subscribe(f"iots6/{device}/config")
    assert not sensor.subscribe("iots6/other-device/config")
    assert not sensor.subscribe("iots6/#")
    for session in (*workers, sensor):
        session.close()
    # The broker container's readiness probe, exactly as rendered, with the login the sidecar wrote.
    probe_env = {**os.environ, **pod.paths(pod.probe_env)}
    probe = subprocess.run(pod.readiness, env=probe_env, capture_output=True, text=True, timeout=10, check=False)
    assert probe.returncode == 0 and "denied" not in probe.stderr, probe.stderr
    assert (pod.root / "probe" / "mosquitto_sub").stat().st_mode & 0o077 == 0
    # No password is left in the sidecar's scratch directory beyond its 0600 login files.
    for path in (pod.root / "seed").rglob("*"):
        assert path.is_dir() or path.stat().st_mode & 0o077 == 0, path


def test_a_broker_left_by_an_older_chart_is_brought_to_the_definition(pod):
    pod.boot(seed=False)
    # The state an older chart left: the admin role and default access of `mosquitto_ctrl dynsec init` (everything
    # readable, delivery allowed by default), and what its seed made: roles `ingest`, `config`, `operator` held by
    # the service clients. On top, drift by hand: svc.ingest's role without the shared subscription, an extra ACL
    # on svc.operator's role, svc.operator disabled.
    with pod.admin() as admin:
        assert len(admin.get_role("admin")["acls"]) > len(dynsec.admin_acls())
        old = [
            {"command": "createRole", "rolename": "ingest", "acls": dynsec.acls_for("operator", "", "iots6")},
            {"command": "createRole", "rolename": "config", "acls": dynsec.acls_for("config", "", "iots6")},
            {"command": "createRole", "rolename": "operator", "acls": dynsec.acls_for("operator", "", "iots6")},
            {"command": "createRole", "rolename": "svc.ingest", "acls": dynsec.acls_for("operator", "", "iots6")},
            {
                "command": "createRole",
                "rolename": "svc.operator",
                "acls": [*dynsec.acls_for("operator", "", "iots6"), dynsec._acl("publishClientSend", "iots6/#")],
            },
        ]
        for service in SERVICES:
            username, password = pod.login(service)
            roles = [{"rolename": service}]
            old.append({"command": "createClient", "username": username, "password": password, "roles": roles})
        old.append({"command": "disableClient", "username": "svc.operator"})
        for command, answer in zip(old, admin.execute(old), strict=True):
            admin.check(command, answer)
    upgrade = pod.seed()
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert "setting(s) in step with the definition" in upgrade.stdout
    _assert_holds_the_platform_definition(pod)
    Session(pod.port, *pod.login("operator")).close()  # enabled again


def test_passes_disconnect_only_the_clients_they_change(pod):
    pod.boot()
    ingest = Session(pod.port, *pod.login("ingest"))
    operator = Session(pod.port, *pod.login("operator"))
    # Nothing changed: a second pass (a restarted sidecar) changes nothing and disconnects nobody.
    again = pod.seed()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "setting(s)" not in again.stdout
    time.sleep(0.5)
    assert ingest.disconnects == 0 and operator.disconnects == 0
    # Rotation: new ingest and admin passwords in "Key Vault"; the next pass applies both, no restart, and only
    # svc.ingest (whose password changed) is disconnected.
    old_ingest = pod.secrets["ingest"]
    pod.write_secrets(ingest=_password(), admin=_password())
    rotated = pod.seed()
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert _wait(lambda: ingest.disconnects > 0, 3)
    time.sleep(0.5)
    assert operator.disconnects == 0
    for session in (ingest, operator):
        session.close()
    with pytest.raises(PermissionError):
        Session(pod.port, "svc.ingest", old_ingest)
    Session(pod.port, *pod.login("ingest")).close()
    _assert_holds_the_platform_definition(pod)
    # A restarted broker keeps every identity; a second init leaves the plugin's state alone.
    pod.stop()
    state = (pod.root / "data" / "dynamic-security.json").read_text()
    second = pod.run("dynsec-init.sh", pod.init_env)
    assert second.returncode == 0 and "keeping" in second.stdout
    assert (pod.root / "data" / "dynamic-security.json").read_text() == state
    pod.start()
    Session(pod.port, *pod.login("ingest")).close()
    Session(pod.port, *pod.login("config")).close()
    assert pod.secrets["admin"] not in state and pod.secrets["ingest"] not in state  # hashes only


def test_devices_reach_the_tls_listener_with_the_environment_ca(pod):
    pod.boot()
    context = ssl.create_default_context(cafile=str(pod.ca.cert))
    Session(pod.tls_port, *pod.login("operator"), tls=context).close()
    with pytest.raises((PermissionError, OSError, ssl.SSLError)):  # plaintext on the TLS port goes nowhere
        Session(pod.tls_port, *pod.login("operator"))
