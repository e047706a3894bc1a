"""A simulated fleet: N virtual Pico W nodes that run the firmware's own application code under CPython.

Each node is ``iots6.app.App`` from ``firmware/lib`` (the scheduler, seq counter, offline buffer, MQTT
wrapper, config client, input debouncing and the BME280 driver, unchanged) wired to a ``Hardware`` object of
shims:

* ``SimI2C`` + ``SimBME280``: the chip's register map (chip id, datasheet calibration, ADC registers).
  Each forced-mode measurement the driver triggers advances a mean-reverting random walk of temperature,
  humidity and pressure around a per-device baseline, and the ADC registers are set to the raw values that the
  datasheet compensation (the firmware driver's own routines) turns back into those values, found by bisection
  (the compensation is monotonic in each raw value).
* ``SimPin``: the PIR (high for a few seconds at random intervals) and the door switch (opened now and then).
* ``SimWLAN``: always associated, RSSI drifting around -60 dBm.
* NTP: the host clock is already right, so ``settime`` does nothing.
* Flash: the node's own directory ``<state_dir>/sim/<device_id>/`` (``device.json``, ``seq.json``, the offline
  buffer, the config cache), passed to the firmware as ``Hardware.root``.

What is real: the broker (``SocketMQTTClient``, the ``umqtt.simple.MQTTClient`` interface over a CPython
socket, speaking MQTT 3.1.1 with QoS 1 PUBACK waits, last will, retained publishes and subscriptions), each
device's provisioned broker account and config token, the config server over HTTP (an outage only shows as an
error), and everything downstream (ingest, database).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from iotctl.errors import InvalidInput, MissingDependency
from iotctl.secretfiles import write_secret
from iotctl.settings import Settings

log = logging.getLogger("iotctl.simulate")

FIRMWARE_LIB = Path(__file__).resolve().parents[1] / "firmware" / "lib"
MAX_COUNT = 1000
MAX_RATE_HZ = 20.0
STEP_MAX_S = 0.2  # longest sleep between scheduler steps: inputs are sampled at least this often
STEP_MIN_S = 0.005
SOCKET_TIMEOUT_S = 10.0  # a broker that stops answering mid-packet becomes an OSError, like a dead link
CONNECT_TIMEOUT_S = 5.0
CRASH_RESTART_S = 1.0  # an unexpected exception "resets the board": a new App after this pause


def firmware_path() -> Path:
    """Put ``firmware/lib`` on ``sys.path`` (once) so ``import iots6`` finds the firmware's package."""
    if not (FIRMWARE_LIB / "iots6" / "app.py").is_file():
        raise MissingDependency(
            f"Firmware package `{FIRMWARE_LIB / 'iots6'}` not found; run the simulator from a checkout of "
            "the repository (pip install -e .)."
        )
    if str(FIRMWARE_LIB) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_LIB))
    return FIRMWARE_LIB


# ------------------------------------------------------------------------------------------- MQTT transport


class MQTTException(OSError):  # noqa: N818 - umqtt.simple's name; an OSError so the firmware's handlers catch it
    """The broker refused (CONNACK return code) or broke the protocol."""


def _encode_str(value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    return struct.pack("!H", len(value)) + value


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


class SocketMQTTClient:
    """The ``umqtt.simple.MQTTClient`` interface (same methods, arguments and blocking behaviour) over a
    CPython TCP socket, MQTT 3.1.1.

    ``connect`` raises ``OSError`` when the broker is unreachable and :class:`MQTTException` (an ``OSError``)
    when it refuses; ``publish`` with ``qos=1`` returns only after the PUBACK; ``check_msg`` returns at once
    when nothing is waiting.  ``on_acked(topic, msg)`` (not in umqtt) is called after each acknowledged
    publish.
    """

    def __init__(
        self,
        client_id,
        server,
        port=0,
        user=None,
        password=None,
        keepalive=0,
        ssl=None,
        ssl_params=None,
        on_acked=None,
    ):
        self.client_id = client_id.encode() if isinstance(client_id, str) else client_id
        self.server = server
        self.port = port or 1883
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.sock = None
        self.cb = None
        self.pid = 0
        self.lw_topic = None
        self.lw_msg = None
        self.lw_qos = 0
        self.lw_retain = False
        self.on_acked = on_acked

    # -- socket helpers
    def _recv(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise OSError(-1, "connection closed by the broker")
            data += chunk
        return data

    def _recv_len(self) -> int:
        n = 0
        shift = 0
        while True:
            b = self._recv(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
            if shift > 21:
                raise MQTTException("malformed remaining length")

    def _packet(self, header: int, body: bytes) -> None:
        self.sock.sendall(bytes((header,)) + _remaining_length(len(body)) + body)

    def _next_pid(self) -> int:
        self.pid = self.pid % 65535 + 1
        return self.pid

    # -- the umqtt.simple API
    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        assert 0 <= qos <= 2 and topic
        self.lw_topic = topic
        self.lw_msg = msg
        self.lw_qos = qos
        self.lw_retain = retain

    def connect(self, clean_session=True, timeout=None):
        sock = socket.create_connection((self.server, self.port), timeout=timeout or CONNECT_TIMEOUT_S)
        sock.settimeout(SOCKET_TIMEOUT_S)
        if self.ssl:  # an ssl.SSLContext, as the firmware's mqtt_factory passes it
            sock = self.ssl.wrap_socket(sock, server_hostname=self.server)
        self.sock = sock
        flags = 0x02 if clean_session else 0
        payload = _encode_str(self.client_id)
        if self.lw_topic:
            flags |= 0x04 | (self.lw_qos & 0x03) << 3 | (0x20 if self.lw_retain else 0)
            payload += _encode_str(self.lw_topic) + _encode_str(self.lw_msg)
        if self.user:
            flags |= 0x80
            payload += _encode_str(self.user)
            if self.pswd:
                flags |= 0x40
                payload += _encode_str(self.pswd)
        body = _encode_str(b"MQTT") + bytes((4, flags)) + struct.pack("!H", self.keepalive) + payload
        try:
            self._packet(0x10, body)
            head = self._recv(4)
        except OSError:
            self._close_quietly()
            raise
        if head[0] != 0x20 or head[1] != 0x02:
            self._close_quietly()
            raise MQTTException("unexpected answer to CONNECT")
        if head[3] != 0:
            self._close_quietly()
            raise MQTTException(head[3], f"connection refused (CONNACK return code {head[3]})")
        return head[2] & 1

    def _close_quietly(self):
        with contextlib.suppress(OSError):
            self.sock.close()

    def disconnect(self):
        try:
            self.sock.sendall(b"\xe0\x00")
        finally:
            self.sock.close()

    def ping(self):
        self.sock.sendall(b"\xc0\x00")

    def publish(self, topic, msg, retain=False, qos=0):
        if isinstance(topic, str):
            topic = topic.encode()
        body = _encode_str(topic)
        pid = 0
        if qos > 0:
            pid = self._next_pid()
            body += struct.pack("!H", pid)
        body += bytes(msg)
        self._packet(0x30 | qos << 1 | (1 if retain else 0), body)
        if qos == 1:
            while True:
                op = self.wait_msg()
                if op == 0x40:
                    size = self._recv(1)[0]
                    if size != 2:
                        raise MQTTException("malformed PUBACK")
                    (rid,) = struct.unpack("!H", self._recv(2))
                    if rid == pid:
                        break
        elif qos == 2:
            raise MQTTException("QoS 2 is not supported")  # umqtt.simple does not support it either
        if self.on_acked is not None:
            self.on_acked(topic, msg)

    def subscribe(self, topic, qos=0):
        assert self.cb is not None, "subscribe callback is not set"
        if isinstance(topic, str):
            topic = topic.encode()
        pid = self._next_pid()
        self._packet(0x82, struct.pack("!H", pid) + _encode_str(topic) + bytes((qos,)))
        while True:
            op = self.wait_msg()
            if op == 0x90:
                data = self._recv(4)
                if data[0] != 0x03 or struct.unpack("!H", data[1:3])[0] != pid:
                    raise MQTTException("unexpected SUBACK")
                if data[3] == 0x80:
                    raise MQTTException(f"subscription to {topic!r} refused")
                return

    def wait_msg(self):
        """Read one packet: a PUBLISH goes to the callback (and is acknowledged at QoS 1); a PINGRESP is
        consumed; for anything else the first byte is returned and the caller reads the rest (as in umqtt)."""
        return self._handle(self.sock.recv(1))

    def check_msg(self):
        """Handle one waiting packet, if any, without blocking; None when nothing was waiting."""
        self.sock.settimeout(0)
        try:
            res = self.sock.recv(1)
        except (BlockingIOError, ssl.SSLWantReadError):  # over TLS "nothing waiting" is SSLWantReadError
            return None
        finally:
            self.sock.settimeout(SOCKET_TIMEOUT_S)
        return self._handle(res)

    def _handle(self, res: bytes):
        if res == b"":
            raise OSError(-1, "connection closed by the broker")
        op = res[0]
        if op == 0xD0:  # PINGRESP
            if self._recv(1)[0] != 0:
                raise MQTTException("malformed PINGRESP")
            return None
        if op & 0xF0 != 0x30:
            return op
        size = self._recv_len()
        (tlen,) = struct.unpack("!H", self._recv(2))
        topic = self._recv(tlen)
        size -= tlen + 2
        pid = None
        if op & 0x06:
            (pid,) = struct.unpack("!H", self._recv(2))
            size -= 2
        msg = self._recv(size)
        if self.cb is not None:
            self.cb(topic, msg)
        if op & 0x06 == 0x02:
            self.sock.sendall(b"\x40\x02" + struct.pack("!H", pid))
        elif op & 0x06 == 0x04:
            raise MQTTException("QoS 2 delivery is not supported")
        return op


# ------------------------------------------------------------------------------------------- hardware shims


def _bisect(f, target, lo, hi, increasing=True):
    """The integer in [lo, hi] whose ``f`` is closest to ``target`` for a monotonic ``f``."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return lo if abs(f(lo) - target) <= abs(f(hi) - target) else hi


class SimBME280:
    """A BME280's register map (chip id 0x60 at 0xD0, calibration at 0x88../0xA1/0xE1.., data 0xF7..0xFE)
    whose readings drift like a room: a mean-reverting random walk around a per-device baseline."""

    # Calibration words of the Bosch datasheet's worked example (BST-BME280-DS002 section 8.1), typical part.
    DIG_T = (27504, 26435, -1000)
    DIG_P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
    DIG_H = (75, 362, 0, 324, 50, 30)

    def __init__(self, rng: random.Random):
        from iots6.drivers import bme280

        self._drv = bme280
        self.rng = rng
        self.base = {
            "temperature": rng.uniform(18.0, 26.0),
            "humidity": rng.uniform(35.0, 60.0),
            "pressure": rng.uniform(995.0, 1030.0),
        }
        self.now = dict(self.base)
        self.regs = bytearray(256)
        self.regs[0xD0] = 0x60
        self.regs[0x88:0xA0] = struct.pack("<HhhHhhhhhhhh", *(self.DIG_T + self.DIG_P))
        h1, h2, h3, h4, h5, h6 = self.DIG_H
        self.regs[0xA1] = h1
        self.regs[0xE1:0xE4] = struct.pack("<hB", h2, h3)
        self.regs[0xE4] = (h4 >> 4) & 0xFF  # H4 = 0xE4[7:0] << 4 | 0xE5[3:0]
        self.regs[0xE5] = (h4 & 0x0F) | ((h5 & 0x0F) << 4)  # H5 = 0xE6[7:0] << 4 | 0xE5[7:4]
        self.regs[0xE6] = (h5 >> 4) & 0xFF
        self.regs[0xE7] = h6 & 0xFF
        self._measure()

    # Random walk: per measurement, 5 % of the way back to the baseline plus gaussian noise.
    STEP = {"temperature": 0.05, "humidity": 0.25, "pressure": 0.08}
    LIMITS = {"temperature": (-10.0, 45.0), "humidity": (5.0, 95.0), "pressure": (950.0, 1050.0)}

    def _drift(self):
        for name, sigma in self.STEP.items():
            x = self.now[name]
            x += 0.05 * (self.base[name] - x) + self.rng.gauss(0.0, sigma)
            lo, hi = self.LIMITS[name]
            self.now[name] = min(hi, max(lo, x))

    def _measure(self):
        """Set the ADC registers to the raw values that compensate to the current conditions."""
        drv = self._drv
        t1, t2, t3 = self.DIG_T
        adc_t = _bisect(
            lambda a: drv.compensate_temperature(a, t1, t2, t3)[0],
            self.now["temperature"] * 100,
            0,
            (1 << 20) - 1,
        )
        t_fine = drv.compensate_temperature(adc_t, t1, t2, t3)[1]
        adc_p = _bisect(
            lambda a: drv.compensate_pressure(a, t_fine, self.DIG_P),
            self.now["pressure"] * 25600,
            0,
            (1 << 20) - 1,
            increasing=False,
        )
        adc_h = _bisect(
            lambda a: drv.compensate_humidity(a, t_fine, self.DIG_H), self.now["humidity"] * 1024, 0, 0xFFFF
        )
        r = self.regs
        r[0xF7], r[0xF8], r[0xF9] = (adc_p >> 12) & 0xFF, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4
        r[0xFA], r[0xFB], r[0xFC] = (adc_t >> 12) & 0xFF, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4
        r[0xFD], r[0xFE] = (adc_h >> 8) & 0xFF, adc_h & 0xFF

    def read_mem(self, reg: int, n: int) -> bytes:
        return bytes(self.regs[reg : reg + n])

    def write_mem(self, reg: int, data: bytes) -> None:
        self.regs[reg] = data[0]
        if reg == 0xF4 and data[0] & 0x03 == 0x01:  # CTRL_MEAS, mode = forced: one conversion
            self._drift()
            self._measure()
        # STATUS (0xF3) stays 0: the conversion is "done" by the time the driver polls it.


class SimI2C:
    """``machine.I2C`` as the drivers use it: scan, readfrom_mem, writeto_mem; ENODEV for absent chips."""

    def __init__(self, devices: dict):
        self.devices = devices

    def scan(self):
        return sorted(self.devices)

    def _chip(self, addr):
        chip = self.devices.get(addr)
        if chip is None:
            raise OSError(19)  # ENODEV, what machine.I2C raises when nothing acknowledges
        return chip

    def readfrom_mem(self, addr, reg, n):
        return self._chip(addr).read_mem(reg, n)

    def writeto_mem(self, addr, reg, data):
        self._chip(addr).write_mem(reg, bytes(data))


class SimPin:
    """A digital input following a random schedule: ``idle`` most of the time, ``active`` for a while.

    PIR (HC-SR501 style): idle 0, active 1 for its hold time.  Door switch (GP17 pull-up, closed = 0): idle 0
    (door shut), active 1 (open)."""

    def __init__(self, rng: random.Random, idle_mean_s: float, active_s: tuple[float, float], clock=time.monotonic):
        self.rng = rng
        self.idle_mean_s = idle_mean_s
        self.active_s = active_s
        self.clock = clock
        self.level = 0
        self.until = clock() + rng.expovariate(1.0 / idle_mean_s)

    def value(self):
        now = self.clock()
        while now >= self.until:
            self.level ^= 1
            if self.level:
                self.until += self.rng.uniform(*self.active_s)
            else:
                self.until += self.rng.expovariate(1.0 / self.idle_mean_s)
        return self.level

    def irq(self, handler=None, trigger=None):  # polled instead (Hardware.pir_trigger is None)
        return None


class SimWLAN:
    """``network.WLAN(STA_IF)``: always associated; RSSI wanders between -75 and -45 dBm."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.rssi = rng.randint(-70, -50)

    def active(self, *args):
        return True

    def connect(self, ssid=None, key=None):
        return None

    def disconnect(self):
        return None

    def isconnected(self):
        return True

    def config(self, *args, **kwargs):
        return None

    def status(self, param=None):
        if param == "rssi":
            self.rssi = min(-45, max(-75, self.rssi + self.rng.choice((-1, 0, 0, 1))))
            return self.rssi
        return 3  # CYW43_LINK_UP


class _Stream:
    """A connected TCP socket with the stream methods the firmware's HTTP client uses."""

    def __init__(self, sock):
        self.sock = sock
        self.reader = sock.makefile("rb")

    def write(self, data):
        self.sock.sendall(data)
        return len(data)

    def readline(self, limit=-1):
        return self.reader.readline(limit)

    def read(self, n=-1):
        return self.reader.read(n)

    def close(self):
        self.reader.close()
        self.sock.close()


def http_connect(host, port, tls):
    """``Hardware.connect`` for the config client: a real TCP (or TLS) connection, 5 s timeout as on the
    device."""
    sock = socket.create_connection((host, port), timeout=5)
    if tls:
        import ssl

        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    return _Stream(sock)


# ------------------------------------------------------------------------------------------ nodes and fleet


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
        self._write_device_file()

    def _write_device_file(self) -> None:
        """``device.json`` as it is written at flash time (0600: it holds the node's secrets)."""
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

    def _on_acked(self, topic: bytes, msg: bytes) -> None:
        if topic.endswith(b"/telemetry") or topic.endswith(b"/event"):
            payload = json.loads(msg)
            with self.lock:
                self.seqs.add(payload["seq"])
                self.sent_dropped += payload.get("dropped", 0)

    def _mqtt_factory(self, cfg, client_id):
        tls = None
        if cfg["broker_tls"]:  # an environment's TLS listener: verify it by the CA provisioning recorded
            tls = ssl.create_default_context(cafile=self.creds.mqtt_ca_file)
        return SocketMQTTClient(
            client_id,
            cfg["broker_host"],
            port=cfg["broker_port"],
            user=cfg["mqtt_username"],
            password=cfg["mqtt_password"],
            keepalive=cfg["mqtt_keepalive_s"],
            ssl=tls,
            on_acked=self._on_acked,
        )

    def _hardware(self):
        from iots6.app import Hardware

        pir = SimPin(self.rng, idle_mean_s=self.rng.uniform(60, 180), active_s=(2.0, 6.0))
        door = SimPin(self.rng, idle_mean_s=self.rng.uniform(240, 900), active_s=(5.0, 60.0))
        return Hardware(
            root=str(self.root),
            i2c=SimI2C({0x76: SimBME280(self.rng)}),
            pir_pin=pir,
            switch_pin=door,
            wlan=SimWLAN(self.rng),
            mqtt_factory=self._mqtt_factory,
            connect=http_connect,
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

        mqtt = self.app.mqtt if self.app is not None else None
        if mqtt is None or not mqtt.connected:
            return
        try:
            mqtt.client.publish(mqtt.status_topic, fw_contract.STATUS_OFFLINE.encode(), retain=True, qos=1)
            mqtt.client.disconnect()
        except OSError:
            pass  # the broker is gone: it publishes the will instead
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


def validate(count: int, rate: float, duration: float | None, prefix: str) -> None:
    from iots6_platform.core import contract

    if not 1 <= count <= MAX_COUNT:
        raise InvalidInput(f"`--count` must be between 1 and {MAX_COUNT}, got {count}; fix the value.")
    if not 0 < rate <= MAX_RATE_HZ:
        raise InvalidInput(f"`--rate` must be above 0 and at most {MAX_RATE_HZ:g} Hz, got {rate:g}; fix the value.")
    if duration is not None and duration <= 0:
        raise InvalidInput(f"`--duration` must be a positive number of seconds, got {duration:g}; fix the value.")
    if not contract.valid_device_id(f"{prefix}-{count:04d}"):
        raise InvalidInput(
            f"`--prefix` `{prefix}` makes invalid device ids; use A-Z, a-z, 0-9, `_` and `-` (at most 59 characters)."
        )


def device_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(1, count + 1)]


class Fleet:
    """``count`` nodes named ``<prefix>-0001`` ...; ``start()`` provisions (when needed) and boots them,
    ``totals()`` is a live summary, ``stop()`` switches them off cleanly and returns a report per node."""

    def __init__(self, settings: Settings, count: int, rate: float = 1.0, prefix: str = "sim", seed: int | None = None):
        validate(count, rate, None, prefix)
        firmware_path()
        self.settings = settings
        self.ids = device_ids(prefix, count)
        self.period_s = 1.0 / rate
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.stop_event = threading.Event()
        self.nodes: list[Node] = []
        self.started_at: float | None = None

    def start(self) -> Fleet:
        from iotctl.devices import ensure_provisioned

        creds = [ensure_provisioned(self.settings, device_id) for device_id in self.ids]
        for i, c in enumerate(creds):
            self.nodes.append(Node(self.settings, c, self.period_s, self.seed + i))
        self.started_at = time.monotonic()
        for node in self.nodes:
            node.start(self.stop_event)
        return self

    def totals(self) -> dict:
        reports = [n.report() for n in self.nodes]
        return {
            "nodes": len(reports),
            "online": sum(r.online for r in reports),
            "published": sum(r.published for r in reports),
            "buffered": sum(r.buffered for r in reports),
            "dropped": sum(r.dropped for r in reports),
        }

    def stop(self, timeout: float = 15.0) -> list[NodeReport]:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if node.thread is not None:
                node.thread.join(max(0.0, deadline - time.monotonic()))
        return [n.report() for n in self.nodes]

    def summary(self, reports: list[NodeReport]) -> dict:
        elapsed = time.monotonic() - self.started_at if self.started_at is not None else 0.0
        return {
            "nodes": len(reports),
            "rate_hz": round(1.0 / self.period_s, 6),
            "elapsed_s": round(elapsed, 3),
            "published": sum(r.published for r in reports),
            "buffered": sum(r.buffered for r in reports),
            "dropped": sum(r.dropped for r in reports),
            "devices": [r.summary() for r in reports],
        }
