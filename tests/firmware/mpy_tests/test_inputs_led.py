# PIR cooldown, switch debounce and LED pattern selection, driven by a test-controlled millisecond clock.
from iots6 import led
from iots6.inputs import Pir, Switch
from machine import FakePin

from mpytest import run

now = [0]


def clock():
    return now[0]


def test_pir_cooldown():
    now[0] = 0
    pir = Pir(30000, clock)
    pin = FakePin(16)
    pin.irq(handler=pir.irq, trigger=FakePin.IRQ_RISING)
    assert not pir.poll()
    pin.set(1)
    assert pir.poll()  # first motion: an event
    assert not pir.poll()  # reported once
    pin.set(0)
    now[0] = 10000
    pin.set(1)
    assert not pir.poll()  # inside the 30 s cooldown: suppressed
    pin.set(0)
    now[0] = 30000
    pin.set(1)
    assert pir.poll()  # cooldown over


def test_pir_polled_rising_edge():
    now[0] = 0
    pir = Pir(0, clock)
    pir.update(0)
    assert not pir.poll()
    pir.update(1)
    assert pir.poll() and pir.state is True
    pir.update(1)
    assert not pir.poll()  # a level, not an edge


def test_switch_debounce_reports_each_change_once():
    now[0] = 0
    sw = Switch(50, clock)
    assert sw.update(1) is None  # pull-up high = open; the state at boot is not an event
    now[0] = 60
    assert sw.update(1) is None and sw.closed is False
    # contact bounce: low/high/low within 50 ms
    now[0] = 100
    assert sw.update(0) is None
    now[0] = 110
    assert sw.update(1) is None
    now[0] = 120
    assert sw.update(0) is None
    now[0] = 160
    assert sw.update(0) is None  # only 40 ms stable
    now[0] = 170
    assert sw.update(0) is True  # stable 50 ms: closed, reported once
    now[0] = 500
    assert sw.update(0) is None
    now[0] = 600
    sw.update(1)
    now[0] = 660
    assert sw.update(1) is False
    assert sw.closed is False


def test_led_selection():
    assert led.select({"booting": True}) == "boot"
    assert led.select({"wifi": False}) == "wifi_connecting"
    assert led.select({"wifi": True, "mqtt": False}) == "offline"
    assert led.select({"wifi": True, "mqtt": True}) == "online"
    assert led.select({"wifi": True, "mqtt": True, "error": "sensors: EIO"}) == "error"
    # no clock beats everything: nothing can be published until it is set
    assert led.select({"wifi": True, "mqtt": True, "clock": False, "error": "config: timeout"}) == "no_clock"
    assert led.select({"wifi": False, "clock": None}) == "wifi_connecting"  # None: no network, no question yet
    names = ("boot", "wifi_connecting", "online", "offline", "error", "no_clock", "config_error")
    shapes = set(led.PATTERNS[n] for n in names)
    assert len(shapes) == len(names)  # every state looks different


def test_led_tick_follows_pattern():
    now[0] = 0
    pin = FakePin("LED")
    status = led.Led(pin, clock)
    status.set_pattern("online")  # 60 on, 140 off, 60 on, 1740 off
    seen = []
    for t in (0, 59, 60, 199, 200, 259, 260, 1999, 2000):
        now[0] = t
        seen.append(status.tick())
    assert seen == [True, True, False, False, True, True, False, False, True], seen
    assert pin.writes == [1, 0, 1, 0, 1], pin.writes  # written only on change (the LED is on the CYW43 bus)
    status.enabled = False
    assert status.tick() is False


run(globals())
