# The main loop end to end with fakes of the hardware and the network: boot -> NTP -> online -> broker down
# (readings buffered on flash) -> broker back (replayed oldest-first) -> reboot (seq continues).
import json

from fakechips import FakeBME280Chip, FakeSSD1306Chip
from fakeclock import FakeClock
from fakenet import FakeBroker, FakeHTTPServer
from iots6 import app as appmod
from iots6.app import App, Hardware
from iots6.display import SSD1306
from machine import FakeI2C, FakePin, FakeWDT
from network import FakeWLAN

from mpytest import fresh_root, run


class Rig:
    """One device on a bench: a root directory as its flash, and fakes for everything it is wired to."""

    def __init__(self, root=None, **device):
        self.root = root or fresh_root("app")
        data = {
            "device_id": "pico-app",
            "wifi_ssid": "lab",
            "wifi_password": "pw",
            "broker_host": "mq",
            "config_url": "http://cfg:8080",
            "config_token": "tok",
            "telemetry_interval_s": 10,
            "seq_persist_every": 5,
        }
        data.update(device)
        with open(self.root + "/device.json", "w") as f:
            f.write(json.dumps(data))
        self.clock = FakeClock()
        self.broker = FakeBroker()
        self.wlan = FakeWLAN()
        self.server = FakeHTTPServer()
        self.oled = FakeSSD1306Chip()
        self.i2c = FakeI2C(devices={0x76: FakeBME280Chip(), 0x3C: self.oled})
        self.wdt = FakeWDT()
        self.pir = FakePin(16)
        self.switch = FakePin(17, FakePin.IN, FakePin.PULL_UP)
        self.ntp_fail = 0
        self.hw = Hardware(
            self.clock,
            root=self.root,
            i2c=self.i2c,
            display=SSD1306(self.i2c),
            led_pin=FakePin("LED", FakePin.OUT),
            pir_pin=self.pir,
            pir_trigger=FakePin.IRQ_RISING,
            switch_pin=self.switch,
            wlan=self.wlan,
            wdt=self.wdt,
            mqtt_factory=self.broker.client,
            connect=self.server.connect,
            settime=self.settime,
        )

    def settime(self, host):
        if self.ntp_fail:
            self.ntp_fail -= 1
            raise OSError(110)  # ETIMEDOUT
        self.clock.set_time(2025, 6, 1, 12)

    def boot(self):
        self.app = App(self.hw)
        return self.app

    def run_for(self, ms):
        end = self.clock.ticks + ms
        while self.clock.ticks < end:
            self.app.step()
            self.app.wait(appmod.LOOP_MS)

    def seqs(self, suffix):
        return [p["seq"] for p in self.broker.payloads(suffix)]


def test_offline_buffer_reconnect_replay():
    rig = Rig()
    rig.ntp_fail = 1
    for _ in range(4):
        rig.server.reply(304)
    rig.server.replies = None
    app = rig.boot()
    rig.run_for(500)
    assert app.state["wifi"] and app.state["mqtt"]
    b = rig.broker
    assert b.retained["iots6/pico-app/status"] == b"online"
    assert ("pico-app", "iots6/pico-app/config", 1) in b.subscriptions
    assert b.payloads("/telemetry") == []  # the first reading came before NTP: never published
    assert app.no_clock_dropped == 1
    rig.run_for(10000)
    live = b.payloads("/telemetry")
    assert len(live) == 1, live  # at 5 s, right after NTP succeeded on its retry
    assert live[0]["ts"].startswith("2025-06-01T12:00:") and live[0]["temperature"] == 25.08
    assert live[0]["pressure"] == 1006.53 and live[0]["rssi"] == -61 and live[0]["switch"] is False

    b.go_down()  # broker restarts: the will marks the device offline
    assert b.retained["iots6/pico-app/status"] == b"offline"
    rig.run_for(30000)
    assert not app.state["mqtt"]
    assert len(app.buffer) == 3, len(app.buffer)
    rig.pir.set(1)  # motion while offline: an event, buffered in order with the readings
    rig.run_for(100)
    assert len(app.buffer) == 4
    assert app.led.name == "offline"
    assert app.state["queued"] == 4

    b.up = True
    rig.run_for(130000)  # reconnect waits out the backoff (at most 120 s + jitter)
    assert app.state["mqtt"] and len(app.buffer) == 0
    assert b.retained["iots6/pico-app/status"] == b"online"
    assert app.led.name == "online"
    tele = rig.seqs("/telemetry")
    events = b.payloads("/event")
    assert len(events) == 1 and events[0]["event"] == "motion" and events[0]["motion"] is True
    everything = [
        json.loads(m)["seq"]
        for (t, m, r, q) in b.published
        if t.endswith("/telemetry") or t.endswith("/event")
    ]
    assert everything == sorted(everything), everything  # replayed oldest-first, then live
    assert len(set(everything)) == len(everything)
    assert len(tele) >= 5
    assert all(q == 1 for (t, m, r, q) in b.published if not t.endswith("/status"))
    assert rig.wdt.feeds > 1000
    assert all(p["ts"] >= "2022" for p in b.payloads("/telemetry"))


def test_dropped_count_sent_with_first_message():
    rig = Rig(buffer_capacity=2)
    for _ in range(5):
        rig.server.reply(304)
    app = rig.boot()
    rig.run_for(10500)
    rig.broker.go_down()
    rig.run_for(50000)  # 5 readings into a buffer of 2
    assert app.buffer.dropped == 3 and len(app.buffer) == 2
    rig.broker.up = True
    rig.run_for(130000)  # more readings are dropped while the reconnect backs off
    after = rig.broker.payloads("/telemetry")
    with_drop = [p for p in after if "dropped" in p]
    assert len(with_drop) == 1, after
    seqs = [p["seq"] for p in after]
    # every seq not received was counted as dropped, and reported with the first message after the gap
    assert with_drop[0]["dropped"] == max(seqs) + 1 - len(seqs), (with_drop, seqs)
    assert with_drop[0]["seq"] == seqs[1]
    assert app.buffer.dropped == 0


def test_seq_continues_after_reboot_and_config_applied():
    rig = Rig()
    rig.server.reply_json({"motion_cooldown_s": 7, "switch_debounce_ms": 20, "oled_brightness": 10}, '"c1"')
    for _ in range(5):
        rig.server.reply(304)
    app = rig.boot()
    rig.run_for(25000)
    assert app.cfg["motion_cooldown_s"] == 7 and app.pir.cooldown_ms == 7000
    assert app.switch.debounce_ms == 20
    cmds = rig.oled.commands
    assert [cmds[i + 1] for i in range(len(cmds) - 1) if cmds[i] == 0x81][-1] == 10  # contrast, then level
    before = rig.seqs("/telemetry")
    rig.switch.set(0)  # switch closed: one event after the 20 ms debounce
    rig.run_for(200)
    ev = rig.broker.payloads("/event")
    assert len(ev) == 1 and ev[0]["event"] == "switch" and ev[0]["switch"] is True, ev

    rig2 = Rig(root=rig.root)  # power cycle: same flash, fresh RAM
    rig2.server.reply(304)
    app2 = rig2.boot()
    assert app2.cfg["motion_cooldown_s"] == 7  # from the flash cache, before any fetch
    rig2.run_for(6000)
    after = rig2.seqs("/telemetry")
    assert after and after[0] > max(before + [ev[0]["seq"]]), (before, after)


def test_wifi_loss_and_errors_do_not_crash():
    rig = Rig()
    app = rig.boot()  # no config answers queued: every fetch fails, telemetry must go on
    rig.run_for(10500)
    assert len(rig.broker.payloads("/telemetry")) == 1, (app.state, app.errors)
    assert app.led.name == "error" and "config" in app.state["error"]
    rig.wlan.drop()
    rig.i2c.fail = True  # and the sensor bus dies too
    rig.run_for(30000)
    assert not app.state["wifi"]
    assert len(app.buffer) == 3
    assert app.buffer.peek()[1]["temperature"] is None
    rig.wlan.ap_up = True
    rig.i2c.fail = False
    rig.run_for(200000)
    assert app.state["wifi"] and app.state["mqtt"] and len(app.buffer) == 0


def test_crash_loop_backs_off():
    rig = Rig()
    with open(rig.root + "/boots.json", "w") as f:
        f.write(json.dumps({"count": 4}))
    app = rig.boot()
    assert app.crash_delay_ms == 20000, app.crash_delay_ms
    feeds = rig.wdt.feeds
    app.wait(app.crash_delay_ms)
    assert rig.wdt.feeds - feeds >= 20  # fed at least every second of the pause
    rig.server.reply(304)
    rig.run_for(appmod.STABLE_MS + 5000)
    assert json.loads(open(rig.root + "/boots.json").read())["count"] == 0


def test_fractional_telemetry_interval():
    # The simulator (iotctl device simulate --rate 4) sets a fractional interval in device.json; ticks stay ints.
    rig = Rig(telemetry_interval_s=0.25)
    rig.server.reply(304)
    app = rig.boot()
    rig.run_for(6000)  # the first reading waits for NTP (CLOCK_WAIT_MS), then one every 250 ms
    assert isinstance(app.next_telemetry, int)
    rig.run_for(2000)
    n = len(rig.broker.payloads("/telemetry"))
    assert 8 <= n <= 12, n


def test_refused_login_is_a_lost_link_not_a_crash():
    # umqtt.simple raises MQTTException (not an OSError) when the broker refuses the credentials.
    from umqtt.simple import MQTTException

    from iots6.mqtt import Mqtt

    class Refusing:
        def set_last_will(self, *a, **k):
            pass

        def set_callback(self, cb):
            pass

        def connect(self):
            raise MQTTException(5)

    clock = FakeClock()
    link = Mqtt(lambda: Refusing(), "dev-1", "iots6", clock)
    assert link.connect() is False
    assert not link.connected and "mqtt" in link.last_error
    assert not link.due()  # backs off before the next attempt


run(globals())
