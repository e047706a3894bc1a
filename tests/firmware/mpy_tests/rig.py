"""A Pico W on a bench, with its LAN, for the tests that run the firmware end to end in the real interpreter.

``World`` wires the fakes together - the virtual clock, the board's chips and pins (machine.BENCH), the Wi-Fi
radio, a FakeFlash of the real size holding the firmware's own ~150 KiB, and a LAN with a router (DNS), the
broker, the config server, and an NTP server on the internet - then builds the device with the firmware's own
``iots6.board.build_hardware()``, so the code under test is the code that runs on the board, down to the socket
calls.  What each fake does and how it fails is documented in tests/firmware/fakes/.
"""

import json
import random

import fakeclock
import machine
import network
from fakechips import FakeBME280Chip, FakeSSD1306Chip
from fakeclock import FakeClock
from fakeflash import FakeFlash
from fakeinternet import FakeCert, FakeInternet, fake_ca_pem
from fakeservers import FakeConfigServer, FakeDNSServer, FakeMQTTBroker, FakeNTPServer

# The firmware (iots6) is imported only when a device boots, so a test can measure the heap before it.
LOOP_MS = 20  # iots6.app.LOOP_MS
WDT_TIMEOUT_MS = 8300  # iots6.app.WDT_TIMEOUT_MS

BROKER_IP = "192.168.1.10"
CONFIG_IP = "192.168.1.11"
NTP_IP = "162.159.200.1"
FIRMWARE_BYTES = 150 * 1024  # lib/iots6 as .py sources, main.py: what the board's flash holds besides our files
_worlds = [0]


class World:
    def __init__(self, device_id="pico-app", tls=False, keep=True, flash=None, **device):
        _worlds[0] += 1
        random.seed(_worlds[0])  # the firmware's backoff jitter and ids: the same run every time
        self.clock = FakeClock()
        self.bench = machine.new_bench()
        network.reset()
        self.net = FakeInternet(self.clock)
        # DHCP hands out two DNS servers, as most routers do (the router, and the ISP's): lwIP tries both.
        self.net.dns_servers = ["192.168.1.1", "192.168.1.2"]
        self.dns = FakeDNSServer(self.net)
        self.dns.add("mq.lan", BROKER_IP)
        self.dns.add("cfg.lan", CONFIG_IP)
        self.dns.add("pool.ntp.org", NTP_IP, lan=False)
        self.tls = tls
        port = 8883 if tls else 1883
        self.broker = FakeMQTTBroker(self.net, BROKER_IP, port, "mq", username=device_id, password="mqtt-pw",
                                     keep=keep)
        self.config = FakeConfigServer(self.net, CONFIG_IP, 8443 if tls else 8080, "cfg", token="tok")
        self.ntp = FakeNTPServer(self.net, NTP_IP, "ntp")
        if tls:
            self.broker.cert = FakeCert("iots6-test-ca", ("mq.lan",))
            self.config.cert = FakeCert("iots6-test-ca", ("cfg.lan",))
        self.flash = flash or FakeFlash()
        if flash is None:
            self.root = self.flash.mount_at("/pico%d" % _worlds[0])
            self.flash.fill("firmware.bin", FIRMWARE_BYTES)
        else:
            self.root = flash.mountpoint
        self.chip = FakeBME280Chip()
        self.oled = FakeSSD1306Chip()
        self.bench.i2c_devices.update({0x76: self.chip, 0x3C: self.oled})
        self.bench.drivers.update({16: 0, 17: 1})  # PIR connected (output low), switch open (pulled up)
        self.device_id = device_id
        data = {
            "device_id": device_id,
            "wifi_ssid": "lab",
            "wifi_password": "wifi-pw",
            "broker_host": "mq.lan",
            "broker_tls": tls,
            "mqtt_username": device_id,
            "mqtt_password": "mqtt-pw",
            "config_url": "https://cfg.lan:8443" if tls else "http://cfg.lan:8080",
            "config_token": "tok",
            "telemetry_interval_s": 10,
        }
        data.update(device)
        self.device = data
        if flash is None:
            self.write_device(data)
            if tls:
                with open(self.root + "/ca.crt", "wb") as f:
                    f.write(fake_ca_pem("iots6-test-ca"))
        self.app = None
        self.hw = None
        self.resets = 0

    def write_device(self, data):
        with open(self.root + "/device.json", "w") as f:
            f.write(json.dumps(data) if isinstance(data, dict) else data)

    @property
    def wlan(self):
        return network.WLAN(network.STA_IF)

    def boot(self, watchdog=True):
        """Power on: build the hardware as main() does, check the config, arm the watchdog, make the app."""
        from iots6 import board
        from iots6.app import App
        from iots6.config import Config

        self.hw = board.build_hardware(self.root, self.clock)
        wlan = self.wlan
        wlan.password = "wifi-pw"
        cfg = Config(self.root)
        assert board.config_problem(cfg) is None, board.config_problem(cfg)
        if watchdog:
            board.arm_watchdog(self.hw)
        self.app = App(self.hw, cfg)
        return self.app

    def run_for(self, ms, step_ms=LOOP_MS):
        """The main loop for ``ms`` of virtual time (``step_ms`` between steps, as App.run sleeps)."""
        end = self.clock.ticks + ms
        app = self.app
        while self.clock.ticks < end:
            app.step()
            app.wait(step_ms)

    def reset(self):
        """After a watchdog reset or a power cut: RAM and RTC gone, flash kept; boot again."""
        self.resets += 1
        if self.app is not None:  # the old RAM is gone: nothing may keep the old App's objects alive
            for name in list(self.app.__dict__):
                setattr(self.app, name, None)
        self.clock.power_cycle()
        self.broker.half_open()  # the old connection is dead; the broker finds out and sends the will
        return self.boot()

    def telemetry(self):
        return self.broker.payloads("/telemetry")

    def seqs(self, suffix="/telemetry"):
        return [p["seq"] for p in self.broker.payloads(suffix)]


def offset_s(ts):
    """Seconds between ``ts`` (2025-06-01THH:MM:SS.mmmZ) and 12:00:00, the true time a World boots at."""
    assert ts.startswith("2025-06-01T"), ts
    return int(ts[11:13]) * 3600 + int(ts[14:16]) * 60 + float(ts[17:23]) - 12 * 3600


def feeds_ok(world, limit_ms=WDT_TIMEOUT_MS):
    """The longest interval between two watchdog feeds stayed below ``limit_ms``."""
    return world.clock.max_unfed < limit_ms, world.clock.max_unfed


def current_clock():
    return fakeclock.current()
