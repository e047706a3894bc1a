"""The real Pico W: ``build_hardware()`` (the only place that imports ``machine``/``network``/``socket``/``ssl``)
and ``main()``, the entry point from ``main.py``.

Boot order, and why:

1. build the hardware (pins, I2C, OLED, Wi-Fi radio, the bounded network layer) - no watchdog yet;
2. read and check ``/device.json``: while it is missing or invalid, show why on the OLED (and the console) and
   blink SOS on the LED, re-reading the file every 5 s.  The watchdog is *not* armed, so the board never resets
   and ``mpremote`` reaches the REPL at once (Ctrl-C stops the wait; ``mpremote cp device.json :`` fixes it and
   the board starts by itself within 5 s);
3. arm the watchdog (8.3 s; not when a file ``/nowdt`` exists, for long REPL sessions on a bench board);
4. run the app, which never raises.  Only a bug in building the app ends in ``_fatal``: the traceback goes to
   ``/crash.txt``, the board waits 10 s (the REPL stays reachable) and resets.
"""

from iots6.app import WDT_TIMEOUT_MS, App, Hardware
from iots6.compat import Clock, join
from iots6.config import Config

I2C_OLED = 0x3C
MIN_TLS_VERSION = (1, 23, 0)  # ssl.SSLContext + load_verify_locations(cadata=PEM); 1.22 took one DER cert only
CONFIG_RECHECK_MS = 5000
LED_TICK_MS = 50
FATAL_RESET_DELAY_MS = 10000
NOWDT_FILE = "nowdt"


def traceback_text(exc):
    """The traceback of ``exc`` as text (written to /crash.txt)."""
    import io
    import sys

    buf = io.StringIO()
    sys.print_exception(exc, buf)
    return buf.getvalue()


def micropython_version():
    import sys

    return tuple(sys.implementation.version[:3])


def build_hardware(root="/", clock=None):
    """The Pico W's hardware (pins per firmware/README.md), without the watchdog (see ``arm_watchdog``)."""
    import machine
    import network
    import socket

    from iots6.dns import Resolver
    from iots6.net import Net, make_tls_context

    clock = clock or Clock()
    # I2C0 on GP4 (SDA) / GP5 (SCL), 400 kHz fast mode: BME280/SHT31 and the SSD1306 all support it.
    i2c = machine.I2C(0, sda=machine.Pin(4), scl=machine.Pin(5), freq=400000)
    display = None
    try:
        if I2C_OLED in i2c.scan():
            from iots6.display import SSD1306

            display = SSD1306(i2c)
    except Exception:  # noqa: BLE001 - no OLED (or a dead bus): run without a screen
        display = None
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    try:
        wlan.config(pm=0xA11140)  # CYW43 power management off: keeps MQTT latency low (PM_NONE)
    except (OSError, ValueError, TypeError):
        pass

    def dns_servers():
        """The DNS server DHCP gave us (lwIP keeps it; ``ifconfig()[3]``)."""
        try:
            return [wlan.ifconfig()[3]]
        except (OSError, AttributeError, IndexError):
            try:
                return [network.ipconfig("dns")]
            except (OSError, AttributeError, ValueError):
                return []

    def tls_context():
        import ssl

        return make_tls_context(ssl, root)

    def set_rtc(epoch_ms):
        import time

        t = time.gmtime((epoch_ms + 500) // 1000)  # the RTC counts whole seconds: round, do not truncate
        # (year, month, day, weekday, hours, minutes, seconds, subseconds), as micropython-lib's ntptime sets it
        machine.RTC().datetime((t[0], t[1], t[2], t[6] + 1, t[3], t[4], t[5], 0))

    net = Net(socket, Resolver(socket, clock, dns_servers, root), tls_context)
    return Hardware(
        clock,
        root=root,
        i2c=i2c,
        display=display,
        led_pin=machine.Pin("LED", machine.Pin.OUT),  # on the CYW43, not an RP2040 GPIO
        # HC-SR501: push-pull 3.3 V output. The pull-down keeps an unplugged input low: a floating GP16 picks up
        # noise and reported phantom motion.
        pir_pin=machine.Pin(16, machine.Pin.IN, machine.Pin.PULL_DOWN),
        pir_trigger=machine.Pin.IRQ_RISING,
        switch_pin=machine.Pin(17, machine.Pin.IN, machine.Pin.PULL_UP),  # closed contact pulls it low
        dht_pin=machine.Pin(15),  # the dht module drives it; the line needs an external 4.7-10 kOhm pull-up
        adc=machine.ADC(4),
        wlan=wlan,
        net=net,
        set_rtc=set_rtc,
    )


def arm_watchdog(hw):
    """Start the RP2040 watchdog (it cannot be stopped), unless a file ``/nowdt`` exists."""
    import machine

    try:
        open(join(hw.root, NOWDT_FILE)).close()
        hw.console("iots6: /nowdt present, watchdog off")
        return
    except OSError:
        pass
    hw.wdt = machine.WDT(timeout=WDT_TIMEOUT_MS)


def config_problem(cfg):
    problem = cfg.problem()
    if problem is None and cfg.needs_tls():
        version = micropython_version()
        if version < MIN_TLS_VERSION:
            problem = "TLS needs MicroPython 1.23+, this is %d.%d.%d" % version
    return problem


def wait_for_config(hw):
    """A valid configuration; until there is one, say what is wrong and wait (no watchdog, REPL reachable)."""
    from iots6.display import StatusScreen, config_error_lines
    from iots6.led import Led

    clock = hw.clock
    led = Led(hw.led_pin, clock.ticks_ms) if hw.led_pin is not None else None
    screen = StatusScreen(hw.display) if hw.display is not None else None
    told = None
    while True:
        cfg = Config(hw.root)
        problem = config_problem(cfg)
        if problem is None:
            return cfg
        if problem != told:
            told = problem
            fix = "fix /device.json (mpremote cp device.json :) and it starts within 5 s"
            if not problem.startswith("device.json"):
                fix = "install a current MicroPython UF2 (docs/first-flash.md)"
            hw.console("iots6: config error: %s. The board waits (no watchdog, REPL reachable); %s." % (problem, fix))
            if screen is not None:
                try:
                    screen.draw(config_error_lines(problem))
                except Exception:  # noqa: BLE001 - the message is on the console too
                    pass
            if led is not None:
                led.set_pattern("config_error")
        for _ in range(CONFIG_RECHECK_MS // LED_TICK_MS):
            if led is not None:
                try:
                    led.tick()
                except OSError:
                    pass
            clock.sleep_ms(LED_TICK_MS)


def _fatal(hw, root, exc):
    """A bug outside the never-crash loop: keep the traceback, give the REPL 10 s, then reset."""
    import sys

    import machine

    try:
        with open(join(root, "crash.txt"), "w") as f:
            f.write(traceback_text(exc))
    except Exception:  # noqa: BLE001
        pass
    try:
        sys.print_exception(exc)
        print("iots6: fatal error; resetting in %d s (Ctrl-C for the REPL)" % (FATAL_RESET_DELAY_MS // 1000))
    except Exception:  # noqa: BLE001
        pass
    clock = hw.clock if hw is not None else Clock()
    for _ in range(FATAL_RESET_DELAY_MS // 1000):
        if hw is not None and hw.wdt is not None:
            hw.wdt.feed()
        clock.sleep_ms(1000)
    machine.reset()


def main(root="/", clock=None):
    """Entry point from main.py: check the configuration, arm the watchdog, run forever."""
    hw = None
    try:
        hw = build_hardware(root, clock)
        cfg = wait_for_config(hw)
        arm_watchdog(hw)
        App(hw, cfg).run()
    except KeyboardInterrupt:  # Ctrl-C at the REPL during development
        raise
    except Exception as exc:  # noqa: BLE001 - anything left is a bug: record it, then reset
        _fatal(hw, root, exc)
