# Soak: 24 hours of virtual time on the fake bench (rig.World) with a scripted sequence of outages - Wi-Fi, the
# broker (off, frozen, restarted, refusing, slow, talking garbage), DNS, the internet, the config server, NTP, a
# power cut, a full and a read-only flash, a wrong Wi-Fi password - and a DHT22 that gets every 10th frame wrong.
#
# It ends with: no watchdog reset; every reading the sensors took either published or counted in a `dropped`
# field the broker received (none still waiting); the longest interval between watchdog feeds; and the heap's
# high-water mark, asserted against a budget because the WebAssembly heap grows on demand.
#
# Heap: this port's gc.collect() frees nothing while Python runs (it cannot scan the WebAssembly stack), so the day
# runs in chunks of 5 virtual minutes, each a call from run.mjs (--loop soak), and between chunks the live heap is
# gc.mem_alloc() after gc.collect() (soak_sample): 288 samples, taken between two loop steps.  The bench (fakes, this
# script) is measured before the firmware is imported and subtracted.  What a step allocates and drops again (JSON
# text, packets) is not in those samples; the allocation of the first step of each chunk is measured too (nothing
# is freed during a step here, so mem_alloc before/after is what it allocated, the fakes' own work included).
# gc.mem_alloc() costs ~14 ms in this build, hence no sample inside every step.
#
# The loop steps every 2 s (App.run steps every 20 ms; only switch sampling depends on that; the watchdog is still
# fed every second of the wait).  One JSON line
# "SOAK {...}" carries the figures to tests/firmware/test_soak.py, which writes them to test-artifacts/soak.json.
import gc
import json
import random
import time

import dht
import fakeclock

from rig import World

S = 1000
MIN = 60 * S
H = 60 * MIN
STEP_MS = 2000
HEAP_BUDGET = 128 * 1024  # of the ~160 KiB a Pico W has free with Wi-Fi up (docs/firmware.md, "Memory")
FEED_BUDGET_MS = 5000

random.seed(1)  # the firmware's backoff jitter and ids: the same day every run
real_start = time.ticks_ms()
w = World(telemetry_interval_s=60, ntp_resync_s=1800, keep=False, sensors={"dht22": True}, mqtt_keepalive_s=60)
w.config.keep_requests = False
w.config.set_config({"telemetry_interval_s": 60}, '"c0"')
seen = bytearray(4096)  # one byte per seq: times received
stats = {"unique": 0, "resent": 0, "dropped": 0, "events": 0, "undated": 0}
taken = {"events": 0}
state = {"power_cut": False, "live": 0, "base": None, "step_alloc": 0, "app": None, "phase": 0}


def on_publish(topic, payload):
    if not (topic.endswith("/telemetry") or topic.endswith("/event")):
        return
    data = json.loads(payload)
    seq = data["seq"]
    if not data.get("ts"):
        stats["undated"] += 1
    if seen[seq]:
        stats["resent"] += 1
    else:
        stats["unique"] += 1
        if topic.endswith("/event"):
            stats["events"] += 1
    seen[seq] = min(seen[seq] + 1, 255)
    stats["dropped"] += data.get("dropped", 0)


w.broker.on_publish = on_publish


# ------------------------------------------------------------------ the day's script


def at(hours, fn):
    w.clock.at(int(hours * H), fn)


def wifi(up):
    w.wlan.ap_up = up
    if not up:
        w.wlan.drop()


def broker_host(s):
    if s == "off":  # the broker's host loses power: its connections die without a FIN, SYNs go unanswered
        w.broker.half_open()
    w.broker.host.state = s


def broker_freeze(frozen):  # the broker process hangs: connections go silent, a new one never gets its CONNACK
    if frozen:
        w.broker.half_open()
    w.broker.stall_connack = frozen


def dns(mode):
    w.dns.mode = mode


def internet(up):
    w.net.internet_up = up


def config_mode(mode):
    w.config.mode = mode


def config_change(cooldown):
    w.config.set_config({"telemetry_interval_s": 60, "motion_cooldown_s": cooldown}, '"c%d"' % cooldown)
    w.broker.publish("iots6/pico-app/config", json.dumps({"version": cooldown, "etag": "c%d" % cooldown}))


def refuse(code):
    w.broker.refuse_code = code


def garbage(on):
    w.broker.garbage = on


def latency(ms):
    w.broker.latency_ms = ms


def ntp(mode):
    w.ntp.mode = mode


def power_cut():
    state["power_cut"] = True


def flash_full(full):
    if full:
        w.flash.fill_up("user.log")
    else:
        w.flash.remove_file("user.log")


def read_only(on):
    w.flash.read_only = on


def password(pw):
    w.wlan.password = pw


def toggle_switch():
    pin = w.bench.pins[17]
    pin.set(0 if pin.value() else 1)
    taken["events"] += 1


def motion():
    pin = w.bench.pins[16]
    pin.set(1)
    w.clock.at(w.clock.ticks + 5 * S, lambda: pin.set(0))
    taken["events"] += 1


at(1, lambda: wifi(False))
at(1.5, lambda: wifi(True))
at(2, lambda: broker_host("off"))
at(2.75, lambda: broker_host("up"))
at(3.5, lambda: broker_freeze(True))
at(3.67, lambda: broker_freeze(False))
at(5, lambda: dns("down"))
at(5.5, w.broker.kill)
at(6, lambda: dns("up"))
at(7, lambda: internet(False))
at(8, lambda: internet(True))
at(9, lambda: config_mode("stall"))
at(9.17, lambda: config_change(20))
at(9.5, lambda: config_mode("up"))
at(11, lambda: refuse(5))
at(11.17, lambda: refuse(0))
at(11.9, lambda: ntp("down"))
at(11.9, lambda: config_mode("stall"))
at(12, power_cut)
at(12.5, lambda: ntp("up"))
at(12.5, lambda: config_mode("up"))
at(14, lambda: flash_full(True))
at(14.5, lambda: broker_host("refuse"))
at(15.5, lambda: broker_host("up"))
at(16, lambda: flash_full(False))
at(17, lambda: garbage(True))
at(17.1, lambda: garbage(False))
at(18, lambda: latency(700))
at(18.33, lambda: latency(0))
at(19, lambda: password("changed-by-someone"))
at(21, lambda: password("wifi-pw"))
at(22, lambda: read_only(True))
at(22.5, lambda: read_only(False))
for k in range(24):
    at(k + 0.25, toggle_switch)  # a door opened and closed: 24 switch events
for k in range(10):
    at(2 * k + 0.6, motion)  # someone walks by: 10 motion events (30 s cooldown, far apart)

# ------------------------------------------------------------------ run (called by run.mjs, see the top)

CHUNK_MS = 5 * MIN
END_MS = 24 * H
counters = {"watchdog_resets": 0, "crashes": 0}
faults = {}


def soak_sample(live):
    if state["base"] is None:
        state["base"] = live  # the bench, its fakes and this script, before the firmware is imported
    elif live > state["live"]:
        state["live"] = live


def soak():
    if state["phase"] == 0:  # first call: only the baseline sample follows
        state["phase"] = 1
        return True
    if state["phase"] == 1:
        state["phase"] = 2
        dht.FakeDHT22.fail = 10  # every 10th DHT22 frame: Exception("checksum error")
        state["app"] = w.boot()
    app = state["app"]
    end = min(w.clock.ticks + CHUNK_MS, END_MS)
    first = True
    while w.clock.ticks < end:
        if first:
            before = gc.mem_alloc()
        try:
            app.step()
            app.wait(STEP_MS)
        except fakeclock.WatchdogReset as exc:
            counters["watchdog_resets"] += 1
            print("soak: %.2f h: %s" % (w.clock.ticks / H, exc))
            app = state["app"] = w.reset()
            continue
        except Exception as exc:  # noqa: BLE001 - escaped the loop: main() would record it and reset the board
            counters["crashes"] += 1
            print("soak: %.2f h: crash, %s: %s" % (w.clock.ticks / H, exc.__class__.__name__, exc))
            app = state["app"] = w.reset()
            continue
        if first:
            first = False
            used = gc.mem_alloc() - before
            if used > state["step_alloc"]:
                state["step_alloc"] = used
        if state["power_cut"]:
            state["power_cut"] = False
            for name in getattr(app, "faults", {}):
                faults[name] = faults.get(name, 0) + app.faults[name]
            app = state["app"] = w.reset()  # RAM lost (rig.World.reset), flash kept
            w.wlan.password = "wifi-pw"
    if w.clock.ticks < END_MS:
        return True
    dht.FakeDHT22.fail = None
    finish(app)
    return False


def finish(app):
    for name in getattr(app, "faults", {}):
        faults[name] = faults.get(name, 0) + app.faults[name]
    readings = w.chip.measurements + taken["events"]
    live = state["live"] - state["base"]
    summary = {
        "virtual_hours": w.clock.ticks / H,
        "real_seconds": time.ticks_diff(time.ticks_ms(), real_start) / 1000,
        "watchdog_resets": counters["watchdog_resets"],
        "crashes": counters["crashes"],
        "power_cuts": w.resets - counters["watchdog_resets"] - counters["crashes"],
        "readings": readings,
        "telemetry": w.chip.measurements,
        "events_taken": taken["events"],
        "events_published": stats["events"],
        "published": stats["unique"],
        "resent_duplicates": stats["resent"],
        "dropped_reported": stats["dropped"],
        "still_buffered": len(app.buffer),
        "dropped_pending": app.buffer.dropped,
        "undated_published": stats["undated"],
        "faults": faults,
        "max_feed_interval_ms": w.clock.max_unfed,
        "heap_high_water": live,
        "heap_step_alloc_max": state["step_alloc"],
        "heap_budget": HEAP_BUDGET,
        "broker_connects": w.broker.connects,
        "flash_writes": w.flash.writes,
        "flash_bytes_written": w.flash.bytes_written,
    }
    print("SOAK " + json.dumps(summary))
    assert summary["watchdog_resets"] == 0 and summary["crashes"] == 0, summary
    assert summary["still_buffered"] == 0 and summary["dropped_pending"] == 0, summary
    assert summary["published"] + summary["dropped_reported"] == readings, summary
    assert summary["events_published"] <= taken["events"], summary
    assert summary["undated_published"] == 0, summary
    assert faults == {}, summary
    assert summary["max_feed_interval_ms"] <= FEED_BUDGET_MS, summary
    assert summary["heap_high_water"] <= HEAP_BUDGET, summary
    assert summary["published"] > 1300 and summary["dropped_reported"] > 0, summary
    print("PASSED soak")
