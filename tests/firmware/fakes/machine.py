"""Fake of MicroPython's ``machine`` module for the tests: the RP2040's pins, I2C, ADC, watchdog and RTC,
which cannot exist inside the WebAssembly interpreter.  Only what the firmware uses, recorded for asserts.
"""


class FakePin:
    """A GPIO. Tests set the input level with ``set()``; an attached IRQ handler runs on a matching edge."""

    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8

    def __init__(self, id=None, mode=None, pull=None, value=0):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._value = 1 if pull == FakePin.PULL_UP else value
        self.handler = None
        self.trigger = None
        self.writes = []  # every value written as an output, in order

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        self.writes.append(self._value)

    def set(self, level):
        """Drive the pin from outside (the PIR, a switch contact)."""
        old, self._value = self._value, 1 if level else 0
        trigger = self.trigger or 0
        rising = not old and self._value and trigger & FakePin.IRQ_RISING
        falling = old and not self._value and trigger & FakePin.IRQ_FALLING
        if self.handler is not None and (rising or falling):
            self.handler(self)

    def irq(self, handler=None, trigger=IRQ_RISING | IRQ_FALLING, hard=False):
        self.handler = handler
        self.trigger = trigger


class FakeI2C:
    """An I2C bus with fake chips attached: ``{address: chip}``. A chip offers ``read_mem(reg, n)`` /
    ``write_mem(reg, data)`` (register-mapped parts) and/or ``write(data)`` / ``read(n)`` (command parts)."""

    def __init__(self, id=0, sda=None, scl=None, freq=400000, devices=None):
        self.devices = devices if devices is not None else {}
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
    """The watchdog: counts feeds; tests check the app feeds it."""

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class FakeRTC:
    def __init__(self):
        self.dt = (2021, 1, 1, 4, 0, 0, 0, 0)  # the RP2040's power-on value

    def datetime(self, dt=None):
        if dt is None:
            return self.dt
        self.dt = dt


class ResetCalled(Exception):
    pass


def reset():
    raise ResetCalled()


Pin = FakePin
I2C = FakeI2C
ADC = FakeADC
WDT = FakeWDT
RTC = FakeRTC
