"""The main loop: a cooperative scheduler of time-based tasks that never crashes the device.

Each ``step()`` feeds the watchdog, then runs the tasks in turn - inputs, network (Wi-Fi, NTP, MQTT), telemetry,
flush, config, display - each inside a guard: an exception of any kind (OSError from the bus or the network,
``Exception("checksum error")`` from ``dht``, a ``ValueError`` from a bad reply, a ``MemoryError``) is logged to
the console, counted in ``faults``, shown on the OLED, and pauses that task with a growing backoff; the other
tasks go on.  Only a loop that is truly wedged stops feeding the watchdog.  The watchdog is also fed between
the tasks and between the bounded steps inside them (DNS, connect, TLS, each publish), none of which can wait
longer than a few seconds (``iots6.net``), so no single feed interval comes near the 8.3 s limit.

Every reading is appended to the flash buffer (``iots6.buffer``) before it is sent; ``flush`` sends the oldest
first and removes each one after its PUBACK.  A reading taken before the clock is set is stored with its
monotonic time (``_t`` = [boot id, uptime ms]) and dated when the clock is set in the same boot; one left
from an earlier boot cannot be dated and is counted in ``dropped`` (docs/contract.md, "Clock and timestamps").

Hardware is reached only through the ``Hardware`` object: ``iots6.board.build_hardware()`` makes the real one
from ``machine``/``network``/``socket``; tests and the simulator pass their own.
"""

import gc

from iots6 import FW_VERSION, contract
from iots6.buffer import OfflineBuffer
from iots6.compat import Clock, describe, join, read_json, write_json
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
FLUSH_PER_STEP = 10  # buffered messages sent per step (the watchdog is fed after each)
DISPLAY_MS = 1000
BOOTS_FILE = "boots.json"
CRASH_FILE = "crash.txt"
CRASH_FREE_BOOTS = 3  # boots that did not reach a stable connection, tolerated before backing off
STABLE_MS = 120000  # connected and publishing this long = not a crash loop
CONFIG_RETRY_MS = 30000  # first retry after a failed config fetch (then doubling, up to config_poll_s)
FAULT_BACKOFF_MS = 1000  # a task that raised is paused this long, doubling per repeat, up to FAULT_BACKOFF_MAX_MS
FAULT_BACKOFF_MAX_MS = 60000
TASKS = ("inputs", "network", "telemetry", "flush", "config", "show")
ERROR_ORDER = ("fault", "flash", "sensors", "inputs", "oled", "config")  # the OLED's error line: first one wins


class Hardware:
    """Everything the app touches outside the CPU. Unset parts are simply absent features.

    The network is ``net`` (an :class:`iots6.net.Net`: bounded DNS, TCP, TLS, UDP); the MQTT client, the HTTP
    connection and the NTP query are built over it unless ``mqtt_factory``, ``connect`` or ``settime`` are given
    (the simulator gives a ``Net`` over CPython sockets, this ``MQTTClient`` counting its PUBACKs, and no NTP).
    """

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
        self.net = None  # iots6.net.Net
        self.mqtt_factory = None  # (config, client_id) -> a client with umqtt.simple's calls
        self.connect = None  # (host, port, tls) -> connected stream, for HTTP
        self.settime = None  # (ntp host) -> sets the RTC
        self.set_rtc = None  # (ms since the port's epoch) -> sets the RTC
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
        self.faults = {}  # task -> unexpected exceptions so far
        self._streak = {}  # task -> consecutive exceptions
        self._hold = {}  # task -> ticks before which it is skipped (backoff after an exception)
        self.state = {"device_id": self.device_id, "booting": True, "wifi": False, "mqtt": False, "clock": None,
                      "readings": {}, "queued": 0, "dropped": 0, "error": None}
        import random

        self.boot_id = random.getrandbits(24)  # tells this boot's undated readings from an earlier boot's
        self.uptime_ms = 0
        self.last_tick = clock.ticks_ms()
        self.crash_delay_ms = self._count_boot()
        self.boot_reset_done = False
        self.connected_since = None
        self.undatable = 0  # readings from an earlier boot that never got a clock: counted in dropped
        self.clock_source = None
        self.anchor = None  # wall-clock ms at uptime 0, once the clock is known (dates the undated readings)
        self.rssi = None

        self.seq = SeqCounter(hw.root, cfg["seq_persist_every"])
        self.buffer = OfflineBuffer(hw.root, cfg["buffer_capacity"], cfg["buffer_max_bytes"])
        self.pir = Pir(cfg["motion_cooldown_s"] * 1000, clock.ticks_ms)
        if hw.pir_pin is not None and hw.pir_trigger is not None:
            hw.pir_pin.irq(handler=self.pir.irq, trigger=hw.pir_trigger)
        self.switch = Switch(cfg["switch_debounce_ms"], clock.ticks_ms)
        self.led = Led(hw.led_pin, clock.ticks_ms, cfg["led_enabled"]) if hw.led_pin is not None else None
        self.screen = None
        if hw.display is not None:
            from iots6.display import StatusScreen

            self.screen = StatusScreen(hw.display)
        self.sensors = Sensors()
        self._guard("sensors", self._detect_sensors)
        self.wifi = Wifi(hw.wlan, cfg["wifi_ssid"], cfg["wifi_password"], clock) if hw.wlan is not None else None
        self.net = hw.net
        if self.net is not None:
            self.net.feed = self.feed
            self.net.resolver.feed = self.feed
        self.ntp = Ntp(self._settime, clock, cfg["ntp_resync_s"])
        self.mqtt = None
        if hw.mqtt_factory is not None or self.net is not None:
            self.mqtt = Mqtt(self._new_client, self.device_id, self.base, clock, cfg["mqtt_keepalive_s"],
                             on_config=self._on_config_notice, feed=self.feed, status=self._status)
        self.config_client = None
        if hw.connect is not None or self.net is not None:
            self.config_client = ConfigClient(cfg, self.device_id, self._http_connect, clock, self.feed)
        self.config_wanted = True  # fetch once as soon as the network is up
        self.config_retry_ms = CONFIG_RETRY_MS
        now = clock.ticks_ms()
        self.next_telemetry = now
        self.next_config = now
        self.next_display = now
        self._guard("config", self._apply_config)

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
        self.sensors = Sensors(hw.i2c, self.cfg["sensors"], hw.dht_pin, hw.adc, hw.dht_module, self.clock.ticks_ms)

    def _settime(self):
        hw = self.hw
        if hw.settime is not None:
            hw.settime(self.cfg["ntp_server"])
            self.clock_source = "ntp"
            return
        if self.net is None or hw.set_rtc is None:
            raise OSError(-1, "no network clock")
        from iots6 import ntp

        hw.set_rtc(ntp.query(self.net, self.cfg["ntp_server"]))
        self.clock_source = "ntp"

    def _new_client(self):
        hw = self.hw
        cfg = self.cfg
        if hw.mqtt_factory is not None:
            return hw.mqtt_factory(cfg, self.device_id)
        from iots6.mqttclient import MQTTClient

        return MQTTClient(self.device_id, cfg["broker_host"], port=cfg["broker_port"], user=cfg["mqtt_username"],
                          password=cfg["mqtt_password"], keepalive=cfg["mqtt_keepalive_s"], tls=cfg["broker_tls"],
                          net=self.net, clock=self.clock)

    def _http_connect(self, host, port, tls):
        if self.hw.connect is not None:
            return self.hw.connect(host, port, tls)
        return self.net.open(host, port, tls)

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

    # ------------------------------------------------------------------ errors, faults and waiting

    def _error(self, source, exc):
        message = "%s: %s" % (source, describe(exc)) if not isinstance(exc, str) else exc
        self.errors[source] = message
        self.state["last_error"] = message

    def _ok(self, source):
        self.errors.pop(source, None)

    def _guard(self, name, fn):
        """Run one task; any exception is logged, counted and backs the task off - it never leaves the loop."""
        if self._hold:
            hold = self._hold.get(name)
            if hold is not None:
                clock = self.clock
                if clock.ticks_diff(hold, clock.ticks_ms()) > 0:
                    return
                del self._hold[name]
        try:
            fn()
            if self._streak and self._streak.get(name):
                del self._streak[name]
                if not self._streak:
                    self._ok("fault")
        except MemoryError as exc:  # before Exception, which it is too: free what can be freed first
            gc.collect()
            self._fault(name, exc)
        except Exception as exc:  # noqa: BLE001 - the never-crash loop: every task failure is contained here
            self._fault(name, exc)

    def _fault(self, name, exc):
        count = self.faults.get(name, 0) + 1
        self.faults[name] = count
        streak = self._streak.get(name, 0) + 1
        self._streak[name] = streak
        delay = min(FAULT_BACKOFF_MS << min(streak - 1, 6), FAULT_BACKOFF_MAX_MS)
        self._hold[name] = self.clock.ticks_add(self.clock.ticks_ms(), delay)
        self._error("fault", "%s: %s" % (name, describe(exc)))
        if count & (count - 1) == 0:  # the 1st, 2nd, 4th, 8th ... of each task: the console is not flooded
            self.hw.console("iots6: fault in %s (#%d): %s: %s" % (name, count, exc.__class__.__name__, exc))
        if count == 1:
            self._record_crash(name, exc)

    def _record_crash(self, name, exc):
        """The traceback of a task's first fault this boot, on flash for ``mpremote cat :crash.txt``."""
        import sys

        try:
            text = "task %s, uptime %d s\n" % (name, self.uptime_ms // 1000)
            if hasattr(sys, "print_exception"):
                import io

                buf = io.StringIO()
                sys.print_exception(exc, buf)
                text += buf.getvalue()
            else:  # CPython (the simulator)
                text += "%s: %s\n" % (exc.__class__.__name__, exc)
            with open(join(self.hw.root, CRASH_FILE), "w") as f:
                f.write(text)
        except Exception:  # noqa: BLE001 - a full or read-only flash must not turn a fault into a crash
            pass

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

    # ------------------------------------------------------------------ time

    def _status(self):
        """The retained status while connected: ``no_clock`` until the clock is set (readings wait to be dated)."""
        return contract.STATUS_ONLINE if self.clock_valid() else contract.STATUS_NO_CLOCK

    def clock_valid(self):
        return self.ntp.clock_valid()

    def _uptime_now(self):
        return self.uptime_ms + self.clock.ticks_diff(self.clock.ticks_ms(), self.last_tick)

    def _set_clock(self, epoch_ms, source):
        if self.hw.set_rtc is None:
            return
        self.hw.set_rtc(epoch_ms)
        self.clock_source = source
        self.hw.console("iots6: clock set from", source)

    # ------------------------------------------------------------------ messages

    def _readings(self):
        r = dict(self.state["readings"])
        r["motion"] = self.pir.state
        r["switch"] = self.switch.closed
        return r

    def _drop(self, source, exc):
        self._error(source, exc)
        self.buffer.count_drop(1)

    def emit(self, channel, readings, event=None):
        """Number, stamp and store one message on flash; ``flush`` sends it. True when it was stored."""
        try:
            seq = self.seq.next()
        except OSError as exc:  # no seq lease can be written: a number could repeat after a reboot
            self._drop("flash", exc)
            return False
        dated = self.clock_valid()
        ts = contract.format_ts(self.clock.epoch_ms()) if dated else None
        payload = contract.build_payload(
            self.device_id, seq, ts, readings, event=event, rssi=self.rssi, uptime_s=self.uptime_ms // 1000,
            fw=FW_VERSION,
        )
        if not dated:
            payload["_t"] = [self.boot_id, self._uptime_now()]  # dated by flush() once the clock is set
        try:
            self.buffer.append(channel, payload)
        except OSError as exc:
            self._drop("flash", exc)
            return False
        self._ok("flash")
        return True

    def flush(self):
        """Send buffered messages oldest-first while the broker acknowledges them."""
        mqtt = self.mqtt
        buffer = self.buffer
        for _ in range(FLUSH_PER_STEP):
            if mqtt is None or not mqtt.connected:
                return
            item = buffer.peek()
            if item is None:
                return
            channel, payload = item
            stamp = payload.pop("_t", None)
            if payload.get("ts") is None:
                if not isinstance(stamp, list) or len(stamp) != 2 or stamp[0] != self.boot_id:
                    buffer.pop()  # taken in an earlier boot before any clock: it cannot be placed in time
                    buffer.count_drop(1)
                    self.undatable += 1
                    continue
                if not self.clock_valid():
                    return  # wait for the clock; order is kept
                if self.anchor is None:  # the wall time of uptime 0, fixed once: a resend gets the same ts
                    self.anchor = self.clock.epoch_ms() - self._uptime_now()
                payload["ts"] = contract.format_ts(self.anchor + stamp[1])
            dropped = buffer.dropped
            if dropped:
                payload["dropped"] = dropped
            ok = mqtt.publish(channel, contract.encode(payload))
            self.feed()
            if not ok:
                return
            buffer.pop()
            if dropped:
                buffer.sent()

    # ------------------------------------------------------------------ the tasks

    def poll_inputs(self):
        hw = self.hw
        if hw.pir_pin is not None:
            self.pir.update(hw.pir_pin.value())
            if self.pir.poll():
                self.emit(contract.EVENT, self._readings(), contract.KIND_MOTION)
        if hw.switch_pin is not None:
            changed = self.switch.update(hw.switch_pin.value())
            if changed is not None:
                self.emit(contract.EVENT, self._readings(), contract.KIND_SWITCH)

    def telemetry(self):
        clock = self.clock
        now = clock.ticks_ms()
        if clock.ticks_diff(now, self.next_telemetry) < 0:
            return
        # On a fixed grid (due + interval), so readings do not drift by a step each; after a long pause the grid
        # restarts from now rather than bursting.  int(): the simulator's intervals may be fractional.
        interval = int(self.cfg["telemetry_interval_s"] * 1000)
        nxt = clock.ticks_add(self.next_telemetry, interval)
        if clock.ticks_diff(nxt, now) <= 0:
            nxt = clock.ticks_add(now, interval)
        self.next_telemetry = nxt
        self.take_reading()

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
        up = self.wifi.step()
        self.state["wifi"] = up
        self.state["wifi_problem"] = self.wifi.problem
        if not up:
            self.rssi = None
            if self.wifi.last_error:
                self.state["last_error"] = self.wifi.last_error
            if self.mqtt is not None and self.mqtt.connected:
                self.mqtt.close()
            self.state["mqtt"] = False
            return
        self.state["booting"] = False
        self.rssi = self.wifi.rssi()
        if self.ntp.due() and (self.hw.settime is not None or self.net is not None):
            if not self.ntp.step():
                self.state["last_error"] = self.ntp.last_error
            self.feed()
        if self.mqtt is None:
            return
        if not self.mqtt.connected and self.mqtt.due():
            if self.mqtt.connect():
                # On the serial console: `iotctl device flash` waits for this line to report the board online.
                self.hw.console("iots6: online", self.device_id)
            else:
                self.state["last_error"] = self.mqtt.last_error
            self.feed()
        if self.mqtt.connected:
            self.mqtt.poll()
            self.mqtt.announce()  # publishes only when the status changed (the clock got set)
            if self.connected_since is None:
                self.connected_since = self.uptime_ms
            elif self.uptime_ms - self.connected_since >= STABLE_MS:
                self._stable()
        else:
            self.connected_since = None
            if self.mqtt.last_error:
                self.state["last_error"] = self.mqtt.last_error
        self.state["mqtt"] = self.mqtt.connected

    def refresh_config(self):
        if self.config_client is None or not self.state["wifi"]:
            return
        clock = self.clock
        if not self.config_wanted and clock.ticks_diff(clock.ticks_ms(), self.next_config) < 0:
            return
        result = self.config_client.fetch()
        self.config_wanted = False
        poll_ms = self.cfg["config_poll_s"] * 1000
        server_time = self.config_client.server_time_ms
        if server_time is not None and not self.clock_valid():
            # NTP unreachable: the config server's Date, whole seconds, so +0.5 s is the best estimate
            self._set_clock(server_time + 500, "http")
        if result == "error":
            self._error("config", self.config_client.last_error)
            delay = self.config_retry_ms if self.config_retry_ms < poll_ms else poll_ms
            self.config_retry_ms = delay * 2
            self.next_config = clock.ticks_add(clock.ticks_ms(), delay)
            return
        self.config_retry_ms = CONFIG_RETRY_MS
        self.next_config = clock.ticks_add(clock.ticks_ms(), poll_ms)
        self._ok("config")
        if result == "updated":
            if "sensors" in self.config_client.changed:
                self._detect_sensors()
            self._apply_config()

    def _clock_text(self):
        import time

        t = time.gmtime(self.clock.epoch_ms() // 1000)
        return "%02d:%02dZ" % (t[3], t[4])

    def show(self):
        """The LED every step (its pattern needs ms timing); the state and the OLED once per DISPLAY_MS."""
        state = self.state
        now = self.clock.ticks_ms()
        if self.clock.ticks_diff(now, self.next_display) >= 0:
            self.next_display = self.clock.ticks_add(now, DISPLAY_MS)
            self._refresh_state()
            if self.screen is not None and self.cfg["oled_enabled"]:
                shown = dict(state)
                if not shown["error"]:
                    if state["clock"] is False:
                        why = self.ntp.last_error or "ntp: waiting"
                        shown["error"] = "NTP: " + why[5:] if why.startswith("ntp: ") else why
                    else:
                        shown["error"] = state.get("last_error")
                try:
                    self.screen.render(shown, self.cfg["temperature_unit"])
                    self._ok("oled")
                except OSError as exc:
                    self._error("oled", exc)
        if self.led is not None:
            self.led.set_pattern(select(state))
            try:
                self.led.tick()
            except OSError:
                pass  # the LED is on the CYW43 bus; nothing useful to do if it fails

    def _refresh_state(self):
        state = self.state
        state["queued"] = len(self.buffer)
        state["dropped"] = self.buffer.dropped
        state["rssi"] = self.rssi
        dated = self.clock_valid()
        state["clock"] = dated if state["wifi"] else None  # no clock without a network is not news
        state["clock_text"] = self._clock_text() if dated else None
        state["error"] = None
        for source in ERROR_ORDER:
            if source in self.errors:
                state["error"] = self.errors[source]
                break

    def step(self):
        """One pass of the scheduler; never raises (see the module docstring)."""
        clock = self.clock
        now = clock.ticks_ms()
        self.uptime_ms += clock.ticks_diff(now, self.last_tick)  # accumulated: ticks_ms wraps after ~12 days
        self.last_tick = now
        self.feed()
        self._guard("inputs", self.poll_inputs)
        self._guard("network", self.network)
        self.feed()
        self._guard("telemetry", self.telemetry)
        self._guard("flush", self.flush)
        self.feed()
        self._guard("config", self.refresh_config)
        self.feed()
        self._guard("show", self.show)

    def run(self):
        """Forever: the crash-loop pause, then step every LOOP_MS."""
        if self.crash_delay_ms:
            self.state["last_error"] = "crash loop: waiting %d s" % (self.crash_delay_ms // 1000)
            self._guard("show", self.show)
            self.wait(self.crash_delay_ms)
        while True:
            self.step()
            self.wait(LOOP_MS)
