# The faults a real Pico W meets (issue #15), each reproduced with fakes that fail the way MicroPython's lwIP,
# mbedTLS, LittleFS and micropython-lib do (tests/firmware/fakes), against the firmware as the board runs it
# (iots6.board.build_hardware + App, with the watchdog armed on the virtual clock).  A watchdog reset shows as a
# WatchdogReset raised out of the loop.  Each of these failed on firmware 0.1 (docs/firmware.md says how).

import dht
from fakeinternet import FakeCert

from mpytest import run
from rig import World, offset_s

S = 1000
MIN = 60 * S
H = 60 * MIN
FEED_BUDGET_MS = 5000  # the longest the firmware may go without feeding the 8.3 s watchdog
FAST = 250  # ms between loop steps in long phases (App.run uses 20 ms; only switch sampling depends on it)


def seqs_of(world):
    return [p["seq"] for p in world.telemetry()]


def assert_feeds(world):
    assert world.clock.max_unfed <= FEED_BUDGET_MS, world.clock.max_unfed


def assert_complete(world):
    """Every reading the sensor took was published, in order, none dropped.  QoS 1 is at-least-once: a message
    whose PUBACK was lost is sent again, identical (same seq and ts), so the ingest's unique key absorbs it."""
    published = world.telemetry()
    seqs = [p["seq"] for p in published]
    assert seqs == sorted(seqs), seqs
    first = {}
    for p in published:
        assert first.setdefault(p["seq"], p["ts"]) == p["ts"], ("a resend with another ts", p)
    assert len(first) == world.chip.measurements, (len(first), world.chip.measurements)
    assert not any("dropped" in p for p in published)


# ---------------------------------------------------------------------------------------- 1. blocking network


def test_f1_broker_host_off_buffers_and_never_resets():
    w = World()
    app = w.boot()
    w.run_for(15 * S)
    assert app.state["mqtt"]
    w.broker.host.state = "off"  # powered off: SYNs unanswered, the old connection dead without a FIN
    w.broker.half_open()
    w.run_for(10 * MIN, step_ms=FAST)
    assert not app.state["mqtt"] and len(app.buffer) >= 55, len(app.buffer)
    assert app.led.name == "offline"
    assert "mqtt" in app.state["last_error"]
    w.broker.host.state = "up"
    w.run_for(3 * MIN, step_ms=FAST)  # the reconnect backoff is at most 2 min
    assert app.state["mqtt"] and len(app.buffer) == 0
    assert_complete(w)
    assert_feeds(w)


def test_f1_broker_that_never_answers_connect_never_resets():
    w = World()
    w.broker.stall_connack = True  # TCP accepted, CONNECT never answered
    app = w.boot()
    w.run_for(5 * MIN, step_ms=FAST)
    assert not app.state["mqtt"] and w.broker.connects >= 3, w.broker.connects
    w.broker.stall_connack = False
    w.run_for(3 * MIN, step_ms=FAST)
    assert app.state["mqtt"]
    assert_complete(w)
    assert_feeds(w)


def test_f1_internet_and_dns_down_with_the_lan_up_never_resets():
    # The router has no upstream: outside names get no answer, and lwIP's getaddrinfo would wait ~7 s per DNS
    # server.  The NTP resync (pool.ntp.org) runs during the outage, the broker restarts in it.
    w = World(ntp_resync_s=300)
    app = w.boot()
    w.run_for(30 * S)
    assert app.ntp.clock_valid() and app.state["mqtt"]
    w.net.internet_up = False
    w.dns.mode = "down"  # and the router's resolver itself stops answering
    w.run_for(10 * MIN, step_ms=FAST)
    w.broker.kill()  # broker restart: reconnecting needs mq.lan's address, which only the cache still has
    w.run_for(10 * MIN, step_ms=FAST)
    assert app.state["mqtt"], app.state
    assert app.ntp.failures >= 2, app.ntp.failures
    w.net.internet_up = True
    w.dns.mode = "up"
    w.run_for(8 * MIN, step_ms=FAST)
    assert app.ntp.last_error is None
    assert_complete(w)
    assert_feeds(w)


def test_f1_half_open_connection_during_a_publish_loses_nothing():
    w = World()
    app = w.boot()
    w.run_for(15 * S)
    w.broker.half_open()  # the broker's process froze: the TCP connection is dead, nobody says so
    w.run_for(3 * MIN, step_ms=FAST)  # the next publish gets no PUBACK; a new connection works again
    assert w.broker.connects >= 2 and app.state["mqtt"] and len(app.buffer) == 0
    assert_complete(w)
    assert_feeds(w)


def test_f1_one_step_of_ntp_connect_ten_publishes_and_a_fetch_feeds_the_watchdog_between_them():
    w = World(telemetry_interval_s=5, ntp_resync_s=300)
    app = w.boot()
    w.run_for(15 * S)
    w.wlan.drop()
    w.run_for(5 * MIN, step_ms=FAST)  # 60 readings wait on flash, and the NTP resync falls due
    assert len(app.buffer) >= 55
    w.broker.latency_ms = 700  # a slow broker: every CONNACK/PUBACK takes 0.7 s
    w.config.set_config({"motion_cooldown_s": 9}, '"c1"')
    w.broker.publish("iots6/pico-app/config", '{"version": 1, "etag": "c1"}')  # retained: fetched on reconnect
    w.wlan.ap_up = True
    w.run_for(6 * MIN, step_ms=FAST)  # Wi-Fi backoff (up to 2.5 min) + ~100 publishes at 0.7 s each
    assert len(app.buffer) == 0 and app.cfg["motion_cooldown_s"] == 9
    assert_complete(w)
    assert_feeds(w)


# ---------------------------------------------------------------------------------------- 2. not only OSError


def test_f2_dht_checksum_error_costs_one_reading_not_a_reboot():
    w = World(sensors={"climate": "dht22"})
    dht.FakeDHT22.fail = "checksum"  # micropython-lib's dht: Exception("checksum error")
    try:
        app = w.boot()
        w.run_for(15 * S)  # two readings with a bad frame
    finally:
        dht.FakeDHT22.fail = None
    w.run_for(20 * S)
    temps = [p["temperature"] for p in w.telemetry()]
    assert None in temps and temps[-1] == 21.5, temps
    assert app.faults == {}, app.faults  # handled where it happens, not by the last-resort guard
    assert app.state["error"] is None


def test_f2_bad_ntp_replies_are_failed_syncs():
    w = World()
    w.ntp.mode = "short"  # 40 bytes: micropython-lib's ntptime raises ValueError (struct.unpack)
    w.config.mode = "stall"  # no Date header from the config server either
    app = w.boot()
    w.run_for(1 * MIN, step_ms=FAST)
    assert not app.ntp.clock_valid() and app.ntp.failures >= 1
    w.ntp.mode = "kod"  # kiss-o'-death: stratum 0
    w.run_for(2 * MIN, step_ms=FAST)
    w.ntp.mode = "stale"  # a reply that does not answer our request
    w.run_for(3 * MIN, step_ms=FAST)
    assert not app.ntp.clock_valid() and app.faults == {}, app.faults
    w.ntp.mode = "up"
    w.run_for(6 * MIN, step_ms=FAST)  # NTP backs off up to 5 min
    assert app.ntp.clock_valid()
    assert_complete(w)


def test_f2_malformed_packet_from_the_broker_resets_the_link_not_the_board():
    w = World(mqtt_keepalive_s=20, telemetry_interval_s=60)  # idle 10 s: a PINGREQ goes out
    app = w.boot()
    w.run_for(15 * S)
    w.broker.garbage = True  # PINGRESP with a body: umqtt.simple's assert fails (AssertionError)
    w.run_for(2 * MIN, step_ms=FAST)
    assert w.broker.connects >= 2, w.broker.connects
    w.broker.garbage = False
    w.run_for(3 * MIN, step_ms=FAST)
    assert app.state["mqtt"]
    assert_complete(w)


def test_f2_missing_module_is_an_error_on_screen_not_a_crash():
    import os
    import sys

    w = World(tls=True)
    os.mkdir(w.root + "/nossl")  # a build without ssl (or a library mip never installed): importing it fails
    with open(w.root + "/nossl/ssl.py", "w") as f:
        f.write("raise ImportError(\"no module named 'ssl'\")\n")
    saved = sys.modules.pop("ssl", None)
    sys.path.insert(0, w.root + "/nossl")
    try:
        app = w.boot()
        w.run_for(2 * MIN, step_ms=FAST)
    finally:
        sys.path.pop(0)
        sys.modules.pop("ssl", None)
        if saved is not None:
            sys.modules["ssl"] = saved
    assert not app.state["mqtt"] and "ssl" in app.state["last_error"], app.state
    assert len(app.buffer) >= 11


def test_f2_a_task_that_keeps_raising_is_backed_off_and_the_rest_runs():
    w = World()

    class Stuck:
        def write(self, data):
            raise RuntimeError("controller stuck")  # not an OSError: a driver bug, say

    app = w.boot()
    w.bench.i2c_devices[0x3C] = Stuck()
    w.run_for(2 * MIN, step_ms=FAST)
    assert app.faults.get("show", 0) >= 3, app.faults
    assert app.faults["show"] < 30, app.faults  # backed off, not retried every 20 ms
    assert app.state["mqtt"]
    assert_complete(w)
    assert_feeds(w)


# ---------------------------------------------------------------------------------------- 3. flash fills up


def test_f3_two_days_offline_cannot_fill_the_flash():
    w = World(telemetry_interval_s=60)
    app = w.boot()
    w.run_for(30 * S)
    w.wlan.drop()
    w.run_for(48 * H, step_ms=60000)  # 2,880 readings while the access point is gone
    free = w.flash.free_bytes()
    assert free >= 64 * 1024, free
    assert app.buffer.bytes_used() <= 196608, app.buffer.bytes_used()
    held = len(app.buffer)
    assert held > 500 and app.buffer.dropped > 2000, (held, app.buffer.dropped)
    w.reset()  # a reboot on a well-used flash: the seq lease, boots.json and the config cache still fit
    w.wlan.ap_up = True
    w.run_for(10 * MIN, step_ms=FAST)
    app = w.app
    assert len(app.buffer) == 0
    published = w.telemetry()
    dropped = sum(p.get("dropped", 0) for p in published)
    assert len(published) + dropped == w.chip.measurements, (len(published), dropped, w.chip.measurements)


def test_f3_full_flash_at_boot_runs_and_counts_what_it_drops():
    w = World()
    w.flash.fill_up("user.log")  # someone's log file took every block
    app = w.boot()
    w.run_for(2 * MIN, step_ms=FAST)
    assert app.state["mqtt"] and w.telemetry() == []
    assert "flash" in app.state["error"], app.state
    assert app.led.name == "error"
    w.flash.remove_file("user.log")
    w.run_for(1 * MIN, step_ms=FAST)
    published = w.telemetry()
    dropped = sum(p.get("dropped", 0) for p in published)
    assert published and len(published) + dropped == w.chip.measurements, (published, w.chip.measurements)
    assert app.state["error"] is None


def test_f3_read_only_flash_runs_and_counts_what_it_drops():
    w = World()
    app = w.boot()
    w.run_for(30 * S)
    w.flash.read_only = True
    w.run_for(2 * MIN, step_ms=FAST)
    assert app.state["mqtt"] and "read-only" in (app.state["error"] or ""), app.state
    w.flash.read_only = False
    w.run_for(1 * MIN, step_ms=FAST)
    published = w.telemetry()
    dropped = sum(p.get("dropped", 0) for p in published)
    assert dropped >= 10 and len(published) + dropped == w.chip.measurements


# ---------------------------------------------------------------------------------------- 5. no clock


def test_f5_no_clock_is_shown_and_readings_are_dated_later():
    w = World()
    w.ntp.mode = "down"  # UDP 123 blocked
    w.config.mode = "stall"  # and no config server to take the time from
    app = w.boot()
    w.run_for(30 * MIN, step_ms=FAST)
    assert app.state["mqtt"] and not app.ntp.clock_valid()
    assert app.led.name == "no_clock", app.led.name
    assert app.screen.last[2] == "MQTT ok no clock", app.screen.last
    assert w.telemetry() == [] and len(app.buffer) >= 175
    status = "iots6/pico-app/status"
    assert w.broker.retained[status] == b"no_clock", "the fleet sees the device is up but has no clock"
    w.ntp.mode = "up"
    w.run_for(6 * MIN, step_ms=FAST)
    assert w.broker.retained[status] == b"online"
    announced = [m for (t, m, r, q) in w.broker.messages if t == status]
    assert announced[-2:] == [b"no_clock", b"online"], announced
    published = w.telemetry()
    assert len(published) == w.chip.measurements and app.buffer.dropped == 0
    assert not any("dropped" in p for p in published)
    # dated from the monotonic clock: 10 s apart, starting when the device booted (true time 12:00:00)
    times = [offset_s(p["ts"]) for p in published]
    assert times == sorted(times)
    assert abs(times[0]) < 1.5, times[0]
    assert abs(times[180] - 1800) < 1.5, times[180]
    assert app.led.name != "no_clock"


def test_f5_clock_from_the_config_server_when_ntp_is_blocked():
    w = World()
    w.ntp.mode = "down"
    app = w.boot()
    w.run_for(30 * S)
    assert app.ntp.clock_valid() and app.clock_source == "http"
    assert abs(offset_s(w.telemetry()[0]["ts"])) < 1.5, w.telemetry()[0]["ts"]


def test_f5_undated_readings_of_an_earlier_boot_are_counted_as_dropped():
    w = World()
    w.ntp.mode = "down"
    w.config.mode = "stall"
    w.boot()
    w.run_for(1 * MIN, step_ms=FAST)  # 6 readings, never dated
    undated = w.chip.measurements
    w.ntp.mode = "up"
    w.reset()
    w.run_for(1 * MIN, step_ms=FAST)
    published = w.telemetry()
    dropped = sum(p.get("dropped", 0) for p in published)
    assert dropped == undated and len(published) + dropped == w.chip.measurements, (published, undated)


# ---------------------------------------------------------------------------------------- 6. smaller ones


def test_f6_https_config_server_is_verified_against_the_flashed_ca():
    w = World(tls=True)
    w.config.cert = FakeCert("someone-else", ("cfg.lan",))  # a man in the middle with its own certificate
    w.config.set_config({"motion_cooldown_s": 9}, '"c1"')
    app = w.boot()
    w.run_for(1 * MIN, step_ms=FAST)
    assert app.cfg["motion_cooldown_s"] == 30
    assert "not trusted" in app.errors.get("config", ""), app.errors
    assert app.state["mqtt"] and w.broker.tls_clients >= 1  # the broker's certificate is from the right CA
    w.config.cert = FakeCert("iots6-test-ca", ("cfg.lan",))
    w.run_for(2 * MIN, step_ms=FAST)
    assert app.cfg["motion_cooldown_s"] == 9


def test_f6_unplugged_pir_reports_no_motion():
    w = World()
    del w.bench.drivers[16]  # nothing on GP16
    w.boot()
    w.run_for(2 * MIN)
    assert w.broker.payloads("/event") == []


def test_f6_rssi_is_not_asked_every_step():
    w = World()
    w.boot()
    w.run_for(1 * MIN)
    assert w.wlan.rssi_queries <= 8, w.wlan.rssi_queries  # every 10 s, not every 20 ms step
    assert w.telemetry()[-1]["rssi"] == -61


def test_f6_wrong_wifi_password_says_so():
    w = World()
    app = w.boot()
    w.wlan.password = "something-else"
    w.run_for(10 * S)
    assert app.state.get("last_error") == "wifi: wrong password", app.state
    assert app.screen.last[1] == "WiFi bad passwd", app.screen.last


run(globals())
