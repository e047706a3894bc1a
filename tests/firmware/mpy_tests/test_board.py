# iots6.board.main() and build_hardware() as main.py runs them, on the fake bench (rig.World): the pins and their
# pulls, the watchdog, the RTC, and what the board does with a missing or invalid /device.json (fault 4 of
# issue #15: show it, wait without a watchdog, start once it is fixed) or an old MicroPython (fault 6).
import json

import fakeclock
import machine
from fakechips import FakeSSD1306Chip
from iots6 import board
from iots6.display import SSD1306, StatusScreen, config_error_lines
from machine import FakeI2C, FakePin

from mpytest import run
from rig import World

S = 1000
MIN = 60 * S


def run_main(w, stop_at):
    w.wlan.password = "wifi-pw"
    w.clock.stop_at = stop_at
    try:
        board.main(w.root, w.clock)
    except fakeclock.SimulationOver:
        return
    raise AssertionError("main() returned")


def frame_of(lines):
    """The SSD1306 frame the firmware's own screen code draws for ``lines``."""
    chip = FakeSSD1306Chip()
    StatusScreen(SSD1306(FakeI2C(devices={0x3C: chip}))).draw(lines)
    return chip.frame


def test_main_runs_the_board_with_its_pins_watchdog_and_clock():
    w = World()
    run_main(w, 3 * MIN)
    pins = w.bench.pins
    assert pins[16].pull == FakePin.PULL_DOWN and pins[16].trigger == FakePin.IRQ_RISING  # PIR
    assert pins[17].pull == FakePin.PULL_UP  # switch to GND
    assert pins["LED"].writes, "the LED never changed"
    wdt = w.bench.wdt
    assert wdt is not None and wdt.timeout == 8300 and wdt.feeds > 1000 and not wdt.fired
    assert w.clock.max_unfed < 5000, w.clock.max_unfed
    assert w.clock.epoch // 1000 > 1735689600  # the RTC was set (2025), from NTP
    assert w.broker.retained["iots6/pico-app/status"] == b"online"
    assert len(w.telemetry()) >= 17 and w.oled.frame is not None
    assert w.bench.resets == 0


def test_missing_or_invalid_device_file_waits_without_a_watchdog_then_starts_once_fixed():
    w = World()
    good = dict(w.device)
    w.write_device("{")  # a half-written file
    seen = {}

    def at_9_min():
        seen["wdt"] = w.bench.wdt
        seen["frame"] = w.oled.frame
        seen["led"] = w.bench.pins["LED"].changes

    w.clock.at(9 * MIN, at_9_min)
    w.clock.at(10 * MIN, lambda: w.write_device(good))  # mpremote cp device.json :
    run_main(w, 12 * MIN)
    assert seen["wdt"] is None  # never armed while the configuration is bad: no reset, the REPL stays usable
    assert seen["frame"] == frame_of(config_error_lines("device.json is not valid JSON")), "OLED"
    assert seen["led"] > 1000, seen["led"]  # SOS: 18 changes every 5.6 s
    assert w.bench.resets == 0
    assert w.bench.wdt is not None and not w.bench.wdt.fired  # armed once the file was fixed
    assert len(w.telemetry()) >= 10 and w.telemetry()[0]["seq"] == 0


def test_missing_device_file_is_named_on_the_screen():
    w = World()
    import os

    os.remove(w.root + "/device.json")
    run_main(w, 1 * MIN)
    assert w.bench.wdt is None and w.bench.resets == 0
    assert w.oled.frame == frame_of(config_error_lines("device.json is missing"))


def test_tls_on_micropython_older_than_1_23_is_a_config_error():
    w = World(tls=True)
    real = board.micropython_version
    board.micropython_version = lambda: (1, 22, 2)
    try:
        run_main(w, 1 * MIN)
    finally:
        board.micropython_version = real
    assert w.bench.wdt is None
    assert w.oled.frame == frame_of(config_error_lines("TLS needs MicroPython 1.23+, this is 1.22.2"))


def test_a_bug_while_starting_is_recorded_and_resets_after_ten_seconds():
    w = World()
    real = board.App

    class Broken:
        def __init__(self, hw, cfg):
            raise TypeError("a bug in App.__init__")

    board.App = Broken
    w.wlan.password = "wifi-pw"
    try:
        board.main(w.root, w.clock)
    except machine.ResetCalled:
        pass
    else:
        raise AssertionError("no reset")
    finally:
        board.App = real
    crash = open(w.root + "/crash.txt").read()
    assert "TypeError: a bug in App.__init__" in crash, crash
    assert w.clock.ticks >= 10 * S  # ten seconds for a person to reach the REPL first
    assert w.bench.wdt is not None and not w.bench.wdt.fired  # fed while waiting


def test_nowdt_file_leaves_the_watchdog_off():
    w = World()
    open(w.root + "/nowdt", "w").close()
    run_main(w, 1 * MIN)
    assert w.bench.wdt is None and len(w.telemetry()) >= 5


def test_ca_from_firmware_0_1s_ca_json_is_still_used():
    w = World(tls=True)
    import binascii
    import os

    os.remove(w.root + "/ca.crt")
    pem = b"-----BEGIN CERTIFICATE-----\nFAKECA iots6-test-ca\n-----END CERTIFICATE-----\n"
    with open(w.root + "/ca.json", "w") as f:
        f.write(json.dumps({"cadata_hex": binascii.hexlify(pem).decode()}))
    run_main(w, 1 * MIN)
    assert w.broker.tls_clients >= 1 and len(w.telemetry()) >= 5


run(globals())
