"""One virtual Pico W: its flash directory, its hardware and a thread running the firmware's scheduler."""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from iotctl.secretfiles import write_secret
from iotctl.settings import Settings
from iotctl.simulate.firmware import firmware_path
from iotctl.simulate.hardware import SimBME280, SimI2C, SimPin, SimWLAN
from iotctl.simulate.sockets import node_net

log = logging.getLogger("iotctl.simulate")

STEP_MAX_S = 0.2  # longest sleep between scheduler steps: inputs are sampled at least this often
STEP_MIN_S = 0.005
CRASH_RESTART_S = 1.0  # an unexpected exception "resets the board": a new App after this pause


@cache
def acked_client_class():
    """The firmware's ``MQTTClient`` that also tells the node which readings the broker acknowledged (the only
    addition: the simulator's report counts them); the protocol is the firmware's, unchanged."""
    from iots6.mqttclient import MQTTClient

    class AckedClient(MQTTClient):
        on_acked = None  # (topic, msg) after each QoS 1 publish's PUBACK

        def publish(self, topic, msg, retain=False, qos=0):
            super().publish(topic, msg, retain, qos)
            if qos == 1 and self.on_acked is not None:
                self.on_acked(topic, msg)

    return AckedClient


@dataclass
class NodeReport:
    device_id: str
    online: bool
    published: int  # readings (telemetry + events) the broker acknowledged, each counted once
    buffered: int  # readings still waiting in the node's flash buffer
    dropped: int  # readings the full buffer dropped (oldest first)
    last_seq: int | None  # the newest seq the node used
    crashes: int
    last_error: str | None
    seqs: list[int] = field(default_factory=list, repr=False)  # the acknowledged seqs, sorted

    def summary(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "seqs"}
        return data


class Node:
    """One virtual device: its flash directory, its shims and a thread running the firmware's scheduler."""

    def __init__(self, settings: Settings, creds, period_s: float, seed: int):
        firmware_path()
        self.device_id = creds.device_id
        self.creds = creds
        self.root = Path(settings.state_dir) / "sim" / creds.device_id
        self.period_s = period_s
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.seqs: set[int] = set()
        self.sent_dropped = 0
        self.crashes = 0
        self.crash_error: str | None = None
        self.app = None
        self.thread: threading.Thread | None = None
        self._flash()

    def _flash(self) -> None:
        """What ``iotctl device flash`` puts on a board besides the firmware: ``device.json`` (0600: it holds
        the node's secrets) and the environment's CA as ``ca.crt``, which the firmware verifies the broker and
        the config server by."""
        from iots6.net import CA_FILE

        c = self.creds
        device = {
            "device_id": c.device_id,
            "wifi_ssid": "sim",
            "wifi_password": "sim",
            "broker_host": c.mqtt_host,
            "broker_port": c.mqtt_port,
            "broker_tls": c.mqtt_tls,
            "mqtt_username": c.mqtt_username,
            "mqtt_password": c.mqtt_password,
            "config_url": c.config_url,
            "config_token": c.config_token,
            "topic_base": c.topic_base,
            "telemetry_interval_s": self.period_s,  # device.json wins over the config server's interval
        }
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_secret(self.root / "device.json", json.dumps(device) + "\n")
        ca = self.root / CA_FILE
        if c.mqtt_ca_file:
            ca.write_bytes(Path(c.mqtt_ca_file).read_bytes())
        else:
            ca.unlink(missing_ok=True)  # the environment has no CA of its own (left from another run)

    def _on_acked(self, topic: str, msg: bytes) -> None:
        if topic.endswith("/telemetry") or topic.endswith("/event"):
            payload = json.loads(msg)
            with self.lock:
                self.seqs.add(payload["seq"])
                self.sent_dropped += payload.get("dropped", 0)

    def _hardware(self):
        from iots6.app import Hardware
        from iots6.compat import Clock

        clock = Clock()
        net = node_net(str(self.root))

        def mqtt_factory(cfg, client_id):
            # The arguments App._new_client passes the firmware's client, plus the acknowledgement hook.
            client = acked_client_class()(
                client_id,
                cfg["broker_host"],
                port=cfg["broker_port"],
                user=cfg["mqtt_username"],
                password=cfg["mqtt_password"],
                keepalive=cfg["mqtt_keepalive_s"],
                tls=cfg["broker_tls"],
                net=net,
                clock=clock,
            )
            client.on_acked = self._on_acked
            return client

        pir = SimPin(self.rng, idle_mean_s=self.rng.uniform(60, 180), active_s=(2.0, 6.0))
        door = SimPin(self.rng, idle_mean_s=self.rng.uniform(240, 900), active_s=(5.0, 60.0))
        return Hardware(
            clock,
            root=str(self.root),
            i2c=SimI2C({0x76: SimBME280(self.rng)}),
            pir_pin=pir,
            switch_pin=door,
            wlan=SimWLAN(self.rng),
            net=net,  # MQTT and the config server's HTTP(S), through the firmware's own bounded links
            mqtt_factory=mqtt_factory,
            settime=lambda host: None,  # NTP: the host clock is already set
            console=lambda *args: log.info(" ".join(str(a) for a in args)),  # not stdout: --json owns it
        )

    def boot(self) -> None:
        from iots6.app import App

        self.app = App(self._hardware())

    def start(self, stop: threading.Event) -> None:
        self.boot()
        self.thread = threading.Thread(target=self._run, args=(stop,), name=f"sim-{self.device_id}", daemon=True)
        self.thread.start()

    def _run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    self.app.step()
                except Exception as exc:  # noqa: BLE001 - a firmware bug: record it, "reset the board"
                    self.crashes += 1
                    self.crash_error = f"{type(exc).__name__}: {exc}"
                    log.exception("node %s crashed; restarting it", self.device_id)
                    self._close_link()
                    if stop.wait(CRASH_RESTART_S):
                        break
                    self.boot()
                    continue
                app = self.app
                due_s = app.clock.ticks_diff(app.next_telemetry, app.clock.ticks_ms()) / 1000
                stop.wait(min(STEP_MAX_S, max(STEP_MIN_S, due_s)))
        finally:
            self._shutdown()

    def _close_link(self) -> None:
        if self.app is not None and self.app.mqtt is not None:
            self.app.mqtt.close()

    def _shutdown(self) -> None:
        """Switched off cleanly: a retained ``offline`` on the status topic, then DISCONNECT (no will)."""
        from iots6 import contract as fw_contract
        from iots6.mqttclient import MQTTException

        mqtt = self.app.mqtt if self.app is not None else None
        if mqtt is None or not mqtt.connected:
            return
        try:
            mqtt.client.publish(mqtt.status_topic, fw_contract.STATUS_OFFLINE.encode(), retain=True, qos=1)
            mqtt.client.disconnect()
        except (OSError, MQTTException):
            mqtt.close()  # the broker is gone or broke the protocol: it publishes the will instead
        mqtt.client = None
        mqtt.connected = False

    def report(self) -> NodeReport:
        app = self.app
        with self.lock:
            seqs = sorted(self.seqs)
            sent_dropped = self.sent_dropped
        buffered = len(app.buffer) if app is not None else 0
        dropped = sent_dropped + (app.buffer.dropped if app is not None else 0)
        last_seq = app.seq.value - 1 if app is not None and app.seq.value > 0 else None
        error = self.crash_error
        if app is not None and error is None:
            error = app.state.get("error") or app.state.get("last_error")
        return NodeReport(
            device_id=self.device_id,
            online=bool(app is not None and app.mqtt is not None and app.mqtt.connected),
            published=len(seqs),
            buffered=buffered,
            dropped=dropped,
            last_seq=last_seq,
            crashes=self.crashes,
            last_error=error,
            seqs=seqs,
        )
