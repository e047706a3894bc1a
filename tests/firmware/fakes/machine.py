"""Fake of MicroPython's ``machine`` module for the tests: the RP2040's pins, I2C, ADC, watchdog and RTC,
which cannot exist inside the WebAssembly interpreter.  Only what the firmware uses, recorded for asserts.

``BENCH`` is the board on the test's bench: the chips on I2C0, what drives each GPIO, the last watchdog and RTC,
so ``iots6.board.build_hardware()`` can run unchanged and the test can reach what it built.
"""

import fakeclock

MAX_RECORDED = 2000


class Bench:
    def __init__(self):
        self.i2c_devices = {}  # address -> fake chip on I2C0
        self.drivers = {}  # GPIO number -> level driven from outside (a PIR output, a switch contact); absent: floating
        self.pins = {}  # id -> the last FakePin made for it
        self.wdt = None
        self.resets = 0


BENCH = Bench()


def new_bench():
    """A fresh board for a test (the module is imported once per interpreter)."""
    BENCH.__init__()
    return BENCH


class FakePin:
    """A GPIO. Tests set the input level with ``set()``; an attached IRQ handler runs on a matching edge.

    An input with no pull resistor and nothing connected floats: it reads whatever noise couples in (here a
    pseudo-random level on each read), as an unplugged PIR's input does on a real board."""

    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8

    def __init__(self, id=None, mode=None, pull=None, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self.floating = False
        if value is not None:
            self._value = value
        elif id in BENCH.drivers:
            self._value = BENCH.drivers[id]
        elif isinstance(id, int) and mode == FakePin.IN and pull is None and id not in BENCH.drivers:
            self.floating = True
            self._value = 0
        else:
            self._value = 1 if pull == FakePin.PULL_UP else 0
        self._noise = 0x5A5A
        self.handler = None
        self.trigger = None
        self.writes = []  # values written as an output, in order (the first MAX_RECORDED)
        self.changes = 0  # every write, counted
        self.reads = 0
        BENCH.pins[id] = self

    def value(self, v=None):
        if v is None:
            self.reads += 1
            if self.floating:
                # a 16-bit LFSR: noise, reproducible between runs
                bit = (self._noise ^ (self._noise >> 2) ^ (self._noise >> 3) ^ (self._noise >> 5)) & 1
                self._noise = (self._noise >> 1) | (bit << 15)
                return self._noise & 1
            return self._value
        self._value = 1 if v else 0
        self.changes += 1
        if len(self.writes) < MAX_RECORDED:  # bounded: the soak test measures the heap
            self.writes.append(self._value)

    def set(self, level):
        """Drive the pin from outside (the PIR, a switch contact)."""
        self.floating = False
        old, self._value = self._value, 1 if level else 0
        trigger = self.trigger or 0
        rising = not old and self._value and trigger & FakePin.IRQ_RISING
        falling = old and not self._value and trigger & FakePin.IRQ_FALLING
        if self.handler is not None and (rising or falling):
            self.handler(self)

    def irq(self, handler=None, trigger=IRQ_RISING | IRQ_FALLING, hard=False):
        self.handler = handler
        self.trigger = trigger

    def init(self, mode=None, pull=None, value=None):
        self.mode = mode
        self.pull = pull


class FakeI2C:
    """An I2C bus with fake chips attached: ``{address: chip}``. A chip offers ``read_mem(reg, n)`` /
    ``write_mem(reg, data)`` (register-mapped parts) and/or ``write(data)`` / ``read(n)`` (command parts)."""

    def __init__(self, id=0, sda=None, scl=None, freq=400000, devices=None):
        self.devices = devices if devices is not None else BENCH.i2c_devices
        self.fail = False  # True: every transfer raises OSError(EIO), as with a disconnected bus

    def _dev(self, addr):
        if self.fail or addr not in self.devices:
            raise OSError(5)  # EIO: no ACK from the address
        return self.devices[addr]

    def scan(self):
        if self.fail:
            raise OSError(5)
        return sorted(self.devices)

    def readfrom_mem(self, addr, reg, n):
        return bytes(self._dev(addr).read_mem(reg, n))

    def writeto_mem(self, addr, reg, data):
        self._dev(addr).write_mem(reg, bytes(data))

    def writeto(self, addr, data):
        self._dev(addr).write(bytes(data))
        return len(data)

    def writevto(self, addr, vector):
        data = b"".join(bytes(v) for v in vector)
        self._dev(addr).write(data)

    def readfrom(self, addr, n):
        return bytes(self._dev(addr).read(n))


class FakeADC:
    def __init__(self, channel=4, raw=0):
        self.channel = channel
        self.raw = raw

    def read_u16(self):
        return self.raw


class FakeWDT:
    """The RP2040 watchdog on the virtual clock: not fed within ``timeout`` ms (at most 8388, the hardware's
    limit) of virtual time, it resets the board (``fakeclock.WatchdogReset``). Once started it cannot be stopped."""

    MAX_MS = 8388

    def __init__(self, id=0, timeout=5000, clock=None):
        self.clock = clock or fakeclock.current()
        self.timeout = min(timeout, FakeWDT.MAX_MS)
        self.feeds = 0
        self.fired = False
        self.last_feed = self.clock.ticks
        self.deadline = self.clock.ticks + self.timeout
        self.clock.wdt = self
        BENCH.wdt = self

    def feed(self):
        clock = self.clock
        gap = clock.ticks - self.last_feed
        if gap > clock.max_unfed:
            clock.max_unfed = gap
        self.feeds += 1
        self.last_feed = clock.ticks
        self.deadline = clock.ticks + self.timeout

    def fire(self):
        self.fired = True
        BENCH.resets += 1


class FakeRTC:
    """The RTC: ``datetime(...)`` sets the virtual clock's wall time, as ntptime/our SNTP do on the board."""

    def __init__(self, clock=None):
        self.clock = clock or fakeclock.current()
        self.sets = 0

    def datetime(self, dt=None):
        import time

        if dt is None:
            t = time.gmtime(self.clock.epoch // 1000)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        self.sets += 1
        year, month, day, _weekday, hour, minute, second = dt[0], dt[1], dt[2], dt[3], dt[4], dt[5], dt[6]
        self.clock.set_time(year, month, day, hour, minute, second)


class ResetCalled(BaseException):
    """machine.reset(): the board restarts (a BaseException, like the watchdog's reset)."""


def reset():
    BENCH.resets += 1
    raise ResetCalled()


Pin = FakePin
I2C = FakeI2C
ADC = FakeADC
WDT = FakeWDT
RTC = FakeRTC
