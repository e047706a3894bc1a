"""What provisioning N devices costs the broker: the old way (rewrite the account registry, password file and ACL
file, SIGHUP, wait until the new login works) against Mosquitto's dynamic security (two control-API commands,
the login works when the answer arrives).

``python -m bench.provisioning [--devices 1000]`` prints one JSON document.  Both runs use the real Mosquitto
(one broker each, in a temp dir, nothing else connected), provision devices one after another as ``iotctl device
provision`` does, and check after each one that the device can log in.  Measured per path: wall time, the time
from "start provisioning" to "this device's login works" (p50/p99, first and last 100), the broker's CPU time
(/proc/<pid>/stat), the bytes iotctl wrote, and the size of the broker's state at the end.

The old path is re-created here (the product no longer has it): the same files with the same content as the
previous ``AccountStore`` wrote, rewritten whole for every device, and ``kill -HUP``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from iotctl.broker import dynsec
from iotctl.broker.accounts import ROLE_DEVICE, ROLE_INGEST, ROLE_OPERATOR, rules_for, service_username
from iotctl.broker.identities import DynsecIdentities
from iotctl.broker.pwhash import hash_password
from iotctl.secretfiles import write_secret
from iotctl.stack import procs
from iotctl.stack.mosquitto import MosquittoServer, require_mosquitto
from iots6_platform.core import contract

BASE = contract.DEFAULT_TOPIC_BASE


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (seconds of CPU the broker has used so far)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def login_works(port: int, username: str, password: str, timeout: float = 2.0) -> bool:
    """One CONNECT with these credentials; True on CONNACK success."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=paho.MQTTv5)
    client.username_pw_set(username, password)
    done, result = threading.Event(), {}

    def on_connect(_c, _u, _f, rc, _p):
        result["ok"] = not rc.is_failure
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    done.wait(timeout)
    client.disconnect()
    client.loop_stop()
    return bool(result.get("ok"))


def wait_login(port: int, username: str, password: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not login_works(port, username, password):
        if time.monotonic() > deadline:
            raise TimeoutError(f"`{username}` could not log in within {timeout} s")
        time.sleep(0.005)


PROBE, PROBE_TOPIC = "bench.probe", "bench/probe"


class Probe:
    """Another client of the same broker, round-tripping a QoS 0 message through it every 10 ms while devices are
    provisioned: how long the broker's single event loop keeps everyone else waiting (reloading files, saving
    its state)."""

    def __init__(self, port: int, password: str):
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:6]}")
        self.client.username_pw_set(PROBE, password)
        self.rtts: list[float] = []
        self.sent: dict[str, float] = {}
        self.stop = threading.Event()
        ready = threading.Event()
        self.client.on_subscribe = lambda *_a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        self.client.subscribe(PROBE_TOPIC, qos=0)
        if not ready.wait(5):
            raise RuntimeError("probe subscription not acknowledged")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _on_message(self, _c, _u, message) -> None:
        sent = self.sent.pop(message.payload.decode(), None)
        if sent is not None:
            self.rtts.append(time.monotonic() - sent)

    def _run(self) -> None:
        i = 0
        while not self.stop.wait(0.01):
            i += 1
            self.sent[str(i)] = time.monotonic()
            self.client.publish(PROBE_TOPIC, str(i), qos=0)

    def close(self) -> dict:
        self.stop.set()
        self.thread.join(5)
        time.sleep(0.2)
        self.client.disconnect()
        self.client.loop_stop()
        ms = sorted(x * 1000 for x in self.rtts)
        return {
            "probe_round_trips": len(ms),
            "probe_rtt_ms_p50": round(statistics.median(ms), 2),
            "probe_rtt_ms_p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
            "probe_rtt_ms_max": round(ms[-1], 2),
        }


def summarize(latencies: list[float], wall: float, cpu: float, written: int, state_bytes: int) -> dict:
    """``latencies``: seconds from "provision device i" to "device i logs in", in provisioning order."""
    ms = [x * 1000 for x in latencies]
    ranked = sorted(ms)
    return {
        "devices": len(ms),
        "wall_seconds": round(wall, 2),
        "devices_per_second": round(len(ms) / wall, 1),
        "ready_ms_p50": round(statistics.median(ranked), 2),
        "ready_ms_p99": round(ranked[min(len(ranked) - 1, int(len(ranked) * 0.99))], 2),
        "ready_ms_first_100_mean": round(statistics.fmean(ms[:100]), 2),
        "ready_ms_last_100_mean": round(statistics.fmean(ms[-100:]), 2),
        "broker_cpu_seconds": round(cpu, 2),
        "bytes_written_by_iotctl": written,
        "broker_state_bytes": state_bytes,
    }


# ----------------------------------------------------------------------------------- the old way (re-created)


def old_files(accounts: dict[str, dict]) -> tuple[str, str, str]:
    """accounts.json, passwd and acl exactly as the previous AccountStore rendered them."""
    registry = json.dumps(accounts, indent=2, sort_keys=True) + "\n"
    passwd = "".join(f"{user}:{acct['hash']}\n" for user, acct in sorted(accounts.items()))
    acl = "# Generated by iotctl from the account registry; do not edit by hand.\n"
    for user, acct in sorted(accounts.items()):
        rules = (
            [f"readwrite {PROBE_TOPIC}"]
            if user == PROBE
            else [f"{r.access} {r.topic}" for r in rules_for(acct["role"], user, BASE)]
        )
        acl += f"\nuser {user}\n" + "".join(f"topic {rule}\n" for rule in rules)
    return registry, passwd, acl


def run_old(directory: Path, n: int) -> dict:
    directory.mkdir(mode=0o700)
    (directory / "data").mkdir(mode=0o700)
    accounts = {
        service_username(r): {"role": r, "hash": hash_password(uuid.uuid4().hex)} for r in (ROLE_INGEST, ROLE_OPERATOR)
    }
    probe_password = uuid.uuid4().hex
    accounts[PROBE] = {"role": "probe", "hash": hash_password(probe_password)}
    port = procs.free_port()

    def write_all() -> int:
        written = 0
        for name, text in zip(("accounts.json", "passwd", "acl"), old_files(accounts), strict=True):
            write_secret(directory / name, text)
            written += len(text)
        return written

    write_all()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        ("user root\n" if os.geteuid() == 0 else "")
        + f"per_listener_settings false\nallow_anonymous false\npassword_file {directory}/passwd\n"
        f"acl_file {directory}/acl\nlistener {port} 127.0.0.1\npersistence true\n"
        f"persistence_location {directory}/data/\nlog_dest stderr\nlog_type error\n"
    )
    proc = procs.spawn([require_mosquitto(), "-c", str(conf)], log=directory / "mosquitto.log")
    try:
        procs.wait_for_port("127.0.0.1", port, 10, "mosquitto (old)", directory / "mosquitto.log", proc.pid)
        probe = Probe(port, probe_password)
        cpu0, written, latencies = cpu_seconds(proc.pid), 0, []
        started = time.monotonic()
        for i in range(n):
            device_id, password = f"old-{i:05d}", uuid.uuid4().hex
            t0 = time.monotonic()
            accounts[device_id] = {"role": ROLE_DEVICE, "hash": hash_password(password)}
            written += write_all()
            os.kill(proc.pid, signal.SIGHUP)
            wait_login(port, device_id, password)
            latencies.append(time.monotonic() - t0)
        wall = time.monotonic() - started
        cpu = cpu_seconds(proc.pid) - cpu0
        state = sum((directory / f).stat().st_size for f in ("accounts.json", "passwd", "acl"))
        return {**summarize(latencies, wall, cpu, written, state), **probe.close()}
    finally:
        procs.stop_pid(proc.pid)


# ------------------------------------------------------------------------------------------ dynamic security


def run_dynsec(directory: Path, n: int) -> dict:
    admin = uuid.uuid4().hex
    server = MosquittoServer(directory, procs.free_port())
    server.prepare_state(admin, {ROLE_INGEST: uuid.uuid4().hex, ROLE_OPERATOR: uuid.uuid4().hex})
    pid = server.start()
    try:
        latencies = []
        with DynsecIdentities(dynsec.DynsecAdmin(server.admin_endpoint(admin), timeout=30), BASE) as identities:
            probe_password = uuid.uuid4().hex
            acls = [
                {"acltype": t, "topic": PROBE_TOPIC, "allow": True}
                for t in ("publishClientSend", "subscribePattern", "publishClientReceive")
            ]
            identities.admin.ensure_role(PROBE, acls)
            identities.admin.create_client(PROBE, probe_password, [PROBE])
            probe = Probe(server.port, probe_password)
            cpu0 = cpu_seconds(pid)
            started = time.monotonic()
            for i in range(n):
                device_id, password = f"dyn-{i:05d}", uuid.uuid4().hex
                t0 = time.monotonic()
                identities.provision(device_id, password)
                if not login_works(server.port, device_id, password):
                    raise RuntimeError(f"`{device_id}` cannot log in right after provisioning")
                latencies.append(time.monotonic() - t0)
            wall = time.monotonic() - started
            cpu = cpu_seconds(pid) - cpu0
            probed = probe.close()
        return {**summarize(latencies, wall, cpu, 0, server.state_file.stat().st_size), **probed}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.provisioning", description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000, help="devices to provision on each path")
    args = parser.parse_args(argv)
    if args.devices < 1:
        parser.error("--devices must be >= 1")
    directory = Path(tempfile.mkdtemp(prefix="iotctl-bench-provision-"))
    try:
        log(f"old path: {args.devices} devices (rewrite registry + passwd + acl, SIGHUP, wait for the login)")
        old = run_old(directory / "old", args.devices)
        log(f"dynamic security: {args.devices} devices (createRole + createClient, then the login)")
        new = run_dynsec(directory / "dynsec", args.devices)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    result = {
        "devices": args.devices,
        "old_password_files_sighup": old,
        "dynamic_security": new,
        "speedup_wall": round(old["wall_seconds"] / new["wall_seconds"], 2),
        "broker_cpu_ratio": round(old["broker_cpu_seconds"] / max(new["broker_cpu_seconds"], 0.01), 2),
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
