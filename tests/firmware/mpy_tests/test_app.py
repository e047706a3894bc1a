# The main loop end to end, through the board's own build_hardware() and the wire-level fakes of the LAN
# (rig.World): boot -> NTP -> online -> broker down (readings on flash) -> broker back (replayed oldest-first) ->
# reboot (seq continues), config from the server and its change notice, the crash-loop pause.
import json

from fakechips import FakeBME280Chip
from iots6 import app as appmod

from mpytest import run
from rig import World, offset_s

S = 1000
MIN = 60 * S


def test_offline_buffer_reconnect_replay():
    w = World()
    w.ntp.mode = "down"  # the first NTP attempt fails: the first reading waits to be dated
    w.config.date = False  # (and the config server gives no Date to take the time from)
    app = w.boot()
    w.run_for(5 * S)
    b = w.broker
    assert app.state["wifi"] and app.state["mqtt"]
    assert b.retained["iots6/pico-app/status"] == b"no_clock"  # connected, but no clock yet
    assert "iots6/pico-app/config" in b.live()[0].subscriptions
    assert w.telemetry() == [] and len(app.buffer) == 1  # taken before the clock: kept, not published
    w.ntp.mode = "up"
    w.run_for(10 * S)  # NTP's retry after 2 s (+- jitter) sets the clock
    live = w.telemetry()
    assert len(live) == 2, live
    assert b.retained["iots6/pico-app/status"] == b"online"  # announced once the clock is set
    assert live[0]["seq"] == 0 and abs(offset_s(live[0]["ts"])) < 1, live  # dated after the fact, to the second
    assert live[0]["temperature"] == 25.08 and live[0]["pressure"] == 1006.53 and live[1]["rssi"] == -61

    b.kill()  # broker restart: the will marks the device offline, connects are refused for a while
    b.host.state = "refuse"
    assert b.retained["iots6/pico-app/status"] == b"offline"
    w.run_for(30 * S)
    assert not app.state["mqtt"]
    assert len(app.buffer) == 3, len(app.buffer)
    w.bench.pins[16].set(1)  # motion while offline: an event, buffered in order with the readings
    w.run_for(100)
    assert len(app.buffer) == 4
    assert app.led.name == "offline"
    w.run_for(1 * S)
    assert app.state["queued"] == 4

    b.host.state = "up"
    w.run_for(130 * S, step_ms=100)  # reconnect waits out the backoff (at most 120 s + jitter)
    assert app.state["mqtt"] and len(app.buffer) == 0
    assert b.retained["iots6/pico-app/status"] == b"online"
    w.run_for(2 * S)
    assert app.led.name == "online"
    events = b.payloads("/event")
    assert len(events) == 1 and events[0]["event"] == "motion" and events[0]["motion"] is True
    everything = [json.loads(m)["seq"] for (t, m, r, q) in b.messages if t.endswith(("/telemetry", "/event"))]
    assert everything == sorted(everything), everything  # replayed oldest-first, then live
    assert len(set(everything)) == len(everything)
    assert len(everything) == w.chip.measurements + 1
    assert all(q == 1 for (t, m, r, q) in b.messages)
    assert w.bench.wdt.feeds > 1000
    assert w.clock.max_unfed < 5000, w.clock.max_unfed


def test_dropped_count_sent_with_first_message():
    w = World(buffer_capacity=2)
    app = w.boot()
    w.run_for(10500)
    w.broker.kill()
    w.broker.host.state = "refuse"
    w.run_for(50 * S, step_ms=100)  # 5 readings into a buffer of 2
    assert app.buffer.dropped == 3 and len(app.buffer) == 2, (app.buffer.dropped, len(app.buffer))
    w.broker.host.state = "up"
    w.run_for(130 * S, step_ms=100)  # more readings are dropped while the reconnect backs off
    after = w.telemetry()
    with_drop = [p for p in after if "dropped" in p]
    assert len(with_drop) == 1, after
    seqs = [p["seq"] for p in after]
    # every seq not received was counted as dropped, and reported with the first message after the gap
    assert with_drop[0]["dropped"] == max(seqs) + 1 - len(seqs), (with_drop, seqs)
    assert with_drop[0]["seq"] == seqs[2]
    assert app.buffer.dropped == 0


def test_seq_continues_after_reboot_and_config_applied():
    w = World()
    w.config.set_config({"motion_cooldown_s": 7, "switch_debounce_ms": 20, "oled_brightness": 10}, '"c1"')
    app = w.boot()
    w.run_for(25 * S)
    assert app.cfg["motion_cooldown_s"] == 7 and app.pir.cooldown_ms == 7000
    assert app.switch.debounce_ms == 20
    cmds = w.oled.commands
    assert [cmds[i + 1] for i in range(len(cmds) - 1) if cmds[i] == 0x81][-1] == 10  # contrast, then level
    before = w.seqs()
    w.bench.pins[17].set(0)  # switch closed: one event after the 20 ms debounce
    w.run_for(200)
    ev = w.broker.payloads("/event")
    assert len(ev) == 1 and ev[0]["event"] == "switch" and ev[0]["switch"] is True, ev

    # a change on the server is announced on the config topic (retained); the device fetches at once
    w.config.set_config({"motion_cooldown_s": 11}, '"c2"')
    w.broker.publish("iots6/pico-app/config", json.dumps({"version": 2, "etag": "c2"}))
    w.run_for(2 * S)
    assert app.cfg["motion_cooldown_s"] == 11 and app.cfg["switch_debounce_ms"] == 50

    app2 = w.reset()  # power cycle: same flash, fresh RAM
    assert app2.cfg["motion_cooldown_s"] == 11  # from the flash cache, before any fetch
    w.run_for(6 * S)
    after = w.seqs()[len(before) :]
    assert after and after[-1] > max(before + [ev[0]["seq"]]), (before, after)


def test_wifi_loss_and_errors_do_not_crash():
    w = World()
    w.config.host.state = "refuse"  # every config fetch fails: telemetry must go on
    app = w.boot()
    w.run_for(10500)
    assert len(w.telemetry()) == 2, (app.state, app.errors)
    assert app.led.name == "error" and "config" in app.state["error"]
    w.wlan.drop()
    w.hw.i2c.fail = True  # and the sensor bus dies too
    w.run_for(30 * S)
    assert not app.state["wifi"]
    assert len(app.buffer) == 3
    assert app.buffer.peek()[1]["temperature"] is None
    w.wlan.ap_up = True
    w.hw.i2c.fail = False
    w.run_for(200 * S, step_ms=100)
    assert app.state["wifi"] and app.state["mqtt"] and len(app.buffer) == 0


def test_crash_loop_backs_off():
    w = World()
    with open(w.root + "/boots.json", "w") as f:
        f.write(json.dumps({"count": 4}))
    app = w.boot()
    assert app.crash_delay_ms == 20000, app.crash_delay_ms
    feeds = w.bench.wdt.feeds
    app.wait(app.crash_delay_ms)
    assert w.bench.wdt.feeds - feeds >= 20  # fed at least every second of the pause
    w.run_for(appmod.STABLE_MS + 5000, step_ms=100)
    assert json.loads(open(w.root + "/boots.json").read())["count"] == 0


def test_fractional_telemetry_interval():
    # The simulator (iotctl device simulate --rate 4) sets a fractional interval in device.json; ticks stay ints.
    w = World(telemetry_interval_s=0.25)
    app = w.boot()
    w.run_for(4 * S)
    assert isinstance(app.next_telemetry, int)
    n = len(w.telemetry())
    w.run_for(2 * S)
    n = len(w.telemetry()) - n
    assert 7 <= n <= 9, n


def test_refused_login_is_a_lost_link_not_a_crash():
    w = World()
    w.broker.refuse_code = 5  # CONNACK "not authorised": right after provisioning, before the broker knows us
    app = w.boot()
    w.run_for(30 * S)
    assert not app.state["mqtt"] and app.mqtt.last_error == "mqtt: login refused: not authorised"
    assert not app.mqtt.due()  # backs off before the next attempt
    w.broker.refuse_code = 0
    w.run_for(130 * S, step_ms=100)
    assert app.state["mqtt"] and len(app.buffer) == 0


def test_bme280_at_0x77_survives_the_servers_default_address():
    # The server sends its effective config, which always holds sensors.bme280_address = 118 (0x76); a breakout
    # strapped to 0x77 must still be found after that config is applied (climate auto probes both addresses).
    w = World()
    chip = w.bench.i2c_devices.pop(0x76)
    w.bench.i2c_devices[0x77] = chip
    w.config.set_config({"telemetry_interval_s": 60, "sensors": {"climate": "auto", "bme280_address": 118},
                         "labels": {}, "device_id": "pico-app", "version": 3}, '"e3"')
    app = w.boot()
    w.run_for(15 * S)
    assert app.cfg["sensors"]["bme280_address"] == 118
    assert app.sensors.names() == ["bme280"] and app.sensors.drivers["bme280"].address == 0x77
    assert w.telemetry()[-1]["pressure"] == 1006.53
    # with chips at both addresses, the configured one is used
    w.bench.i2c_devices[0x76] = FakeBME280Chip(adc_t=500000)
    app._detect_sensors()
    assert app.sensors.drivers["bme280"].address == 0x76


run(globals())
