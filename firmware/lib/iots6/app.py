"""The main loop: a cooperative scheduler of time-based tasks that must never crash the device.

Each ``step()`` feeds the watchdog, polls the inputs, advances Wi-Fi / NTP / MQTT by one non-blocking move,
replays the offline buffer oldest-first, takes a reading when the telemetry interval is due, fetches config on a
notice or a slow timer, and refreshes the LED and OLED.  Every I/O step catches OSError, backs off, and reports
through the LED pattern and the OLED's last-error line.

Hardware is reached only through the ``Hardware`` object: ``build_hardware()`` makes the real one from
``machine``/``network``; tests and the simulator pass their own.
"""

from iots6 import FW_VERSION, contract
from iots6.buffer import OfflineBuffer
from iots6.compat import Clock, join, read_json, write_json
from iots6.config import Config
from iots6.configclient import ConfigClient
from iots6.inputs import Pir, Switch
from iots6.led import Led, select
from iots6.mqtt import Mqtt
from iots6.ntp import Ntp
from iots6.sensors import Sensors
from iots6.seq import SeqCounter
from iots6.wifi import Wifi

LOOP_MS = 20  # switch sampling period; also bounds the latency of a motion event
WDT_TIMEOUT_MS = 8300  # the RP2040 watchdog's maximum is ~8.3 s (24-bit counter at 2 ticks/us, erratum RP2040-E1)
WDT_FEED_MS = 1000  # long waits are cut into slices this long, feeding the watchdog between them
FLUSH_PER_STEP = 10  # buffered messages replayed per step, so inputs and the watchdog stay serviced
DISPLAY_MS = 1000
CLOCK_WAIT_MS = 5000  # reading period while the clock is not yet valid
BOOTS_FILE = "boots.json"
CRASH_FREE_BOOTS = 3  # boots that did not reach a stable connection, tolerated before backing off
STABLE_MS = 120000  # connected and publishing this long = not a crash loop
I2C_OLED = 0x3C


class Hardware:
    """Everything the app touches outside the CPU. Unset parts are simply absent features."""

    def __init__(self, clock=None, **parts):
        self.clock = clock or Clock()
        self.root = "/"
        self.i2c = None
        self.led_pin = None
        self.pir_pin = None
        self.pir_trigger = None  # machine.Pin.IRQ_RISING on the device
        self.switch_pin = None
        self.dht_pin = None
        self.dht_module = None
        self.adc = None  # machine.ADC(4), the die temperature sensor
        self.wlan = None
        self.wdt = None
        self.mqtt_factory = None  # (config, client_id) -> umqtt.simple.MQTTClient
        self.connect = None  # (host, port, tls) -> connected stream, for HTTP
        self.settime = None  # (ntp host) -> sets the RTC
        self.display = None  # an SSD1306 driver, or None
        self.console = print  # (*args) -> the serial console; the simulator sends it to its log instead
        for key in parts:
            setattr(self, key, parts[key])


class App:
    def __init__(self, hw, config=None):
        self.hw = hw
        clock = self.clock = hw.clock
        cfg = self.cfg = config or Config(hw.root)
        self.device_id = cfg["device_id"]
        if not contract.valid_device_id(self.device_id):
            raise ValueError("device.json has no valid device_id")
        self.base = cfg["topic_base"]
        self.errors = {}
        self.state = {"device_id": self.device_id, "booting": True, "wifi": False, "mqtt": False,
                      "readings": {}, "queued": 0, "error": None}
        self.uptime_ms = 0
        self.last_tick = clock.ticks_ms()
        self.crash_delay_ms = self._count_boot()
        self.boot_reset_done = False
        self.connected_since = None
        self.no_clock_dropped = 0

        self.seq = SeqCounter(hw.root, cfg["seq_persist_every"])
        self.buffer = OfflineBuffer(hw.root, cfg["buffer_capacity"])
        self.pir = Pir(cfg["motion_cooldown_s"] * 1000, clock.ticks_ms)
        if hw.pir_pin is not None and hw.pir_trigger is not None:
            hw.pir_pin.irq(handler=self.pir.irq, trigger=hw.pir_trigger)
        self.switch = Switch(cfg["switch_debounce_ms"], clock.ticks_ms)
        self.led = Led(hw.led_pin, clock.ticks_ms, cfg["led_enabled"]) if hw.led_pin is not None else None
        self.screen = None
        if hw.display is not None:
            from iots6.display import StatusScreen

            self.screen = StatusScreen(hw.display)
        self._detect_sensors()
        self.wifi = Wifi(hw.wlan, cfg["wifi_ssid"], cfg["wifi_password"], clock) if hw.wlan is not None else None
        self.ntp = Ntp(self._settime, clock, cfg["ntp_resync_s"])
        self.mqtt = None
        if hw.mqtt_factory is not None:
            self.mqtt = Mqtt(self._new_client, self.device_id, self.base, clock, cfg["mqtt_keepalive_s"],
                             on_config=self._on_config_notice)
        self.config_client = ConfigClient(cfg, self.device_id, hw.connect) if hw.connect is not None else None
        self.config_wanted = True  # fetch once as soon as the network is up
        now = clock.ticks_ms()
        self.next_telemetry = now
        self.next_config = now
        self.next_display = now
        self._apply_config()

    # ------------------------------------------------------------------ setup helpers

    def _count_boot(self):
        """Count boots that never reached a stable connection; after a few, wait before networking."""
        path = join(self.hw.root, BOOTS_FILE)
        data = read_json(path, {}) or {}
        count = (data.get("count", 0) if isinstance(data, dict) else 0) + 1
        try:
            write_json(path, {"count": count})
        except OSError:
            pass
        if count <= CRASH_FREE_BOOTS:
            return 0
        return min(10000 << (count - CRASH_FREE_BOOTS - 1), 600000)

    def _stable(self):
        if self.boot_reset_done:
            return
        self.boot_reset_done = True
        try:
            write_json(join(self.hw.root, BOOTS_FILE), {"count": 0})
        except OSError:
            pass

    def _detect_sensors(self):
        hw = self.hw
        self.sensors = Sensors(hw.i2c, self.cfg["sensors"], hw.dht_pin, hw.adc, hw.dht_module)

    def _settime(self):
        self.hw.settime(self.cfg["ntp_server"])

    def _new_client(self):
        return self.hw.mqtt_factory(self.cfg, self.device_id)

    def _on_config_notice(self, msg):
        self.config_wanted = True

    def _apply_config(self):
        cfg = self.cfg
        self.pir.cooldown_ms = cfg["motion_cooldown_s"] * 1000
        self.switch.debounce_ms = cfg["switch_debounce_ms"]
        if self.led is not None:
            self.led.enabled = cfg["led_enabled"]
        if self.screen is not None:
            try:
                self.screen.driver.power(cfg["oled_enabled"])
                self.screen.driver.contrast(cfg["oled_brightness"])
            except OSError as exc:
                self._error("oled", exc)

    # ------------------------------------------------------------------ errors and waiting

    def _error(self, source, exc):
        message = "%s: %s" % (source, exc) if not isinstance(exc, str) else exc
        self.errors[source] = message
        self.state["last_error"] = message

    def _ok(self, source):
        self.errors.pop(source, None)

    def feed(self):
        if self.hw.wdt is not None:
            self.hw.wdt.feed()

    def wait(self, ms):
        """Sleep ``ms`` with the watchdog fed at least every WDT_FEED_MS."""
        while ms > 0:
            chunk = ms if ms < WDT_FEED_MS else WDT_FEED_MS
            self.feed()
            self.clock.sleep_ms(chunk)
            ms -= chunk
        self.feed()

    # ------------------------------------------------------------------ messages

    def _readings(self):
        r = dict(self.state["readings"])
        r["motion"] = self.pir.state
        r["switch"] = self.switch.closed
        return r

    def emit(self, channel, readings, event=None):
        """Stamp, number and send (or buffer) one message. Returns True when it went out or was buffered."""
        if not self.ntp.clock_valid():
            self.no_clock_dropped += 1  # never publish a reading stamped 2021 by an unset RTC
            return False
        try:
            seq = self.seq.next()
        except OSError as exc:
            self._error("flash", exc)
            return False
        rssi = self.wifi.rssi() if self.wifi is not None and self.state["wifi"] else None
        payload = contract.build_payload(
            self.device_id, seq, contract.format_ts(self.clock.epoch_ms()), readings, event=event,
            rssi=rssi, uptime_s=self.uptime_ms // 1000, fw=FW_VERSION,
        )
        if self.mqtt is not None and self.mqtt.connected and len(self.buffer) == 0:
            if self._send(channel, payload):
                return True
        try:
            self.buffer.append(channel, payload)
            self._ok("flash")
        except OSError as exc:
            self._error("flash", exc)
            return False
        return True

    def _send(self, channel, payload):
        if self.buffer.dropped:
            payload["dropped"] = self.buffer.dropped
        if not self.mqtt.publish(channel, contract.encode(payload)):
            payload.pop("dropped", None)
            return False
        try:
            self.buffer.sent()
        except OSError as exc:
            self._error("flash", exc)
        return True

    def flush(self):
        """Replay buffered messages oldest-first while the broker acknowledges them."""
        for _ in range(FLUSH_PER_STEP):
            if self.mqtt is None or not self.mqtt.connected:
                return
            try:
                item = self.buffer.peek()
                if item is None:
                    return
                if not self._send(item[0], item[1]):
                    return
                self.buffer.pop()
            except OSError as exc:
                self._error("flash", exc)
                return

    # ------------------------------------------------------------------ the tasks

    def poll_inputs(self):
        hw = self.hw
        try:
            if hw.pir_pin is not None:
                self.pir.update(hw.pir_pin.value())
                if self.pir.poll():
                    self.emit(contract.EVENT, self._readings(), contract.KIND_MOTION)
            if hw.switch_pin is not None:
                changed = self.switch.update(hw.switch_pin.value())
                if changed is not None:
                    self.emit(contract.EVENT, self._readings(), contract.KIND_SWITCH)
        except OSError as exc:
            self._error("inputs", exc)

    def take_reading(self):
        readings = self.sensors.read()
        if self.sensors.errors:
            names = sorted(self.sensors.errors)
            self._error("sensors", "%s: %s" % (names[0], self.sensors.errors[names[0]]))
        else:
            self._ok("sensors")
        self.state["readings"] = readings
        self.emit(contract.TELEMETRY, self._readings())

    def network(self):
        if self.wifi is None:
            return
        try:
            up = self.wifi.step()
        except OSError as exc:
            up = False
            self._error("wifi", exc)
        self.state["wifi"] = up
        if not up:
            if self.wifi.last_error:
                self.state["last_error"] = self.wifi.last_error
            if self.mqtt is not None and self.mqtt.connected:
                self.mqtt.close()
            return
        self.state["booting"] = False
        if self.hw.settime is not None and self.ntp.due():
            if not self.ntp.step():
                self.state["last_error"] = self.ntp.last_error
        if self.mqtt is None:
            return
        if not self.mqtt.connected and self.mqtt.due():
            if self.mqtt.connect():
                # On the serial console: `iotctl device flash` waits for this line to report the board online.
                self.hw.console("iots6: online", self.device_id)
            else:
                self.state["last_error"] = self.mqtt.last_error
        if self.mqtt.connected:
            self.mqtt.poll()
            if self.connected_since is None:
                self.connected_since = self.uptime_ms
            elif self.uptime_ms - self.connected_since >= STABLE_MS:
                self._stable()
        else:
            self.connected_since = None
        self.state["mqtt"] = self.mqtt.connected

    def refresh_config(self):
        if self.config_client is None or not self.state["wifi"]:
            return
        result = self.config_client.fetch()
        self.config_wanted = False
        self.next_config = self.clock.ticks_add(self.clock.ticks_ms(), self.cfg["config_poll_s"] * 1000)
        if result == "error":
            self._error("config", self.config_client.last_error)
            return
        self._ok("config")
        if result == "updated":
            if "sensors" in self.config_client.changed:
                self._detect_sensors()
            self._apply_config()

    def show(self):
        state = self.state
        state["queued"] = len(self.buffer)
        state["rssi"] = self.wifi.rssi() if self.wifi is not None and state["wifi"] else None
        state["error"] = None
        for source in ("flash", "sensors", "inputs", "oled", "config"):
            if source in self.errors:
                state["error"] = self.errors[source]
                break
        if self.led is not None:
            self.led.set_pattern(select(state))
            try:
                self.led.tick()
            except OSError:
                pass  # the LED is on the CYW43 bus; nothing useful to do if it fails
        now = self.clock.ticks_ms()
        if self.screen is not None and self.cfg["oled_enabled"] and self.clock.ticks_diff(now, self.next_display) >= 0:
            self.next_display = self.clock.ticks_add(now, DISPLAY_MS)
            shown = dict(state)
            if not shown["error"]:
                shown["error"] = state.get("last_error")
            try:
                self.screen.render(shown, self.cfg["temperature_unit"])
                self._ok("oled")
            except OSError as exc:
                self._error("oled", exc)

    def step(self):
        """One pass of the scheduler; never raises OSError."""
        clock = self.clock
        now = clock.ticks_ms()
        self.uptime_ms += clock.ticks_diff(now, self.last_tick)  # accumulated: ticks_ms wraps after ~12 days
        self.last_tick = now
        self.feed()
        self.poll_inputs()
        self.network()
        self.flush()
        if clock.ticks_diff(now, self.next_telemetry) >= 0:
            # Until NTP has set the clock a reading cannot be published; look again soon rather than after a
            # whole interval, so the first reading goes out right after the first sync.
            # int(): the interval may be fractional (the simulator runs nodes at several Hz); ticks are ints.
            interval = int(self.cfg["telemetry_interval_s"] * 1000) if self.ntp.clock_valid() else CLOCK_WAIT_MS
            self.next_telemetry = clock.ticks_add(now, interval)
            self.take_reading()
        if self.config_wanted or clock.ticks_diff(now, self.next_config) >= 0:
            self.refresh_config()
        self.show()

    def run(self):
        """Forever: the crash-loop pause, then step every LOOP_MS."""
        if self.crash_delay_ms:
            self.state["last_error"] = "crash loop: waiting %d s" % (self.crash_delay_ms // 1000)
            self.show()
            self.wait(self.crash_delay_ms)
        while True:
            self.step()
            self.wait(LOOP_MS)


# ---------------------------------------------------------------------- the real hardware


def build_hardware(root="/"):
    """The Pico W's hardware (pins per firmware/README.md). Imports ``machine``/``network`` only here."""
    import machine
    import network

    # The watchdog first, so a hang anywhere after this resets the board. It cannot be stopped once started.
    # A file /nowdt (created by hand on a bench board) leaves it off, for long REPL sessions while developing.
    try:
        open(join(root, "nowdt")).close()
        wdt = None
    except OSError:
        wdt = machine.WDT(timeout=WDT_TIMEOUT_MS)
    # I2C0 on GP4 (SDA) / GP5 (SCL), 400 kHz fast mode: BME280/SHT31 and the SSD1306 all support it.
    i2c = machine.I2C(0, sda=machine.Pin(4), scl=machine.Pin(5), freq=400000)
    display = None
    try:
        if I2C_OLED in i2c.scan():
            from iots6.display import SSD1306

            display = SSD1306(i2c)
    except OSError:
        display = None
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    try:
        wlan.config(pm=0xA11140)  # CYW43 power management off: keeps MQTT latency low (PM_NONE)
    except (OSError, ValueError, TypeError):
        pass

    def settime(host):
        import ntptime

        ntptime.host = host
        ntptime.timeout = 2  # seconds; well inside the watchdog period
        ntptime.settime()

    def connect(host, port, tls):
        import socket

        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], socket.SOCK_STREAM, ai[2])
        s.settimeout(5)  # below the 8.3 s watchdog
        s.connect(ai[-1])
        if tls:
            import ssl

            s = ssl.wrap_socket(s, server_hostname=host)
        return s

    def mqtt_factory(cfg, client_id):
        from umqtt.simple import MQTTClient  # micropython-lib, installed with mip (firmware/manifest.json)

        ssl = None
        if cfg["broker_tls"]:
            import ssl as _ssl

            ssl = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
            ca = read_json(join(root, "ca.json"), None)  # {"cadata_hex": "..."} written at flash time
            if ca:
                import binascii

                ssl.load_verify_locations(cadata=binascii.unhexlify(ca["cadata_hex"]))
                ssl.verify_mode = _ssl.CERT_REQUIRED
            else:
                ssl.verify_mode = _ssl.CERT_NONE  # encrypted but unauthenticated: flash a CA to verify
        port = cfg["broker_port"] or (8883 if ssl else 1883)
        return MQTTClient(client_id, cfg["broker_host"], port=port, user=cfg["mqtt_username"],
                          password=cfg["mqtt_password"], keepalive=cfg["mqtt_keepalive_s"], ssl=ssl)

    return Hardware(
        Clock(),
        root=root,
        i2c=i2c,
        display=display,
        led_pin=machine.Pin("LED", machine.Pin.OUT),  # on the CYW43, not an RP2040 GPIO
        pir_pin=machine.Pin(16, machine.Pin.IN),  # PIR output is push-pull, no pull needed
        pir_trigger=machine.Pin.IRQ_RISING,
        switch_pin=machine.Pin(17, machine.Pin.IN, machine.Pin.PULL_UP),  # closed contact pulls it low
        dht_pin=machine.Pin(15),
        adc=machine.ADC(4),
        wlan=wlan,
        wdt=wdt,
        mqtt_factory=mqtt_factory,
        connect=connect,
        settime=settime,
    )


def main():
    """Entry point from main.py: run forever; on an unexpected error, log it and reset the board."""
    import sys

    try:
        app = App(build_hardware())
        app.run()
    except KeyboardInterrupt:  # Ctrl-C at the REPL during development
        raise
    except Exception as exc:  # noqa: BLE001 - anything left is a bug: record it, then reboot
        try:
            with open("/crash.txt", "w") as f:
                sys.print_exception(exc, f)
        except Exception:  # noqa: BLE001
            pass
        import machine

        machine.reset()
