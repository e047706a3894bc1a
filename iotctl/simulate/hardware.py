"""The simulated board's hardware: what ``iots6.app.Hardware`` holds on a Pico W, as objects with the same calls.

* :class:`SimI2C` + :class:`SimBME280`: the chip's register map (:mod:`iotctl.simulate.bme280chip`).  Each
  forced-mode measurement the driver triggers advances a mean-reverting random walk of temperature, humidity and
  pressure around a per-device baseline, and the ADC registers are set to the raw values that the datasheet
  compensation (the firmware driver's own routines) turns back into those values, found by bisection (the
  compensation is monotonic in each raw value).
* :class:`SimPin`: the PIR (high for a few seconds at random intervals) and the door switch (opened now and then).
* :class:`SimWLAN`: always associated, RSSI drifting around -60 dBm.

The network is not simulated: the firmware's own network layer runs over CPython sockets
(:mod:`iotctl.simulate.sockets`).
"""

from __future__ import annotations

import random
import time

from iotctl.simulate.bme280chip import BME280Registers


def _bisect(f, target, lo, hi, increasing=True):
    """The integer in [lo, hi] whose ``f`` is closest to ``target`` for a monotonic ``f``."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return lo if abs(f(lo) - target) <= abs(f(hi) - target) else hi


class SimBME280(BME280Registers):
    """A BME280 whose readings drift like a room: a mean-reverting random walk around a per-device baseline."""

    # Random walk: per measurement, 5 % of the way back to the baseline plus gaussian noise.
    STEP = {"temperature": 0.05, "humidity": 0.25, "pressure": 0.08}
    LIMITS = {"temperature": (-10.0, 45.0), "humidity": (5.0, 95.0), "pressure": (950.0, 1050.0)}

    def __init__(self, rng: random.Random):
        from iots6.drivers import bme280

        super().__init__()
        self._drv = bme280
        self.rng = rng
        self.base = {
            "temperature": rng.uniform(18.0, 26.0),
            "humidity": rng.uniform(35.0, 60.0),
            "pressure": rng.uniform(995.0, 1030.0),
        }
        self.now = dict(self.base)
        self._measure()

    def _drift(self):
        for name, sigma in self.STEP.items():
            x = self.now[name]
            x += 0.05 * (self.base[name] - x) + self.rng.gauss(0.0, sigma)
            lo, hi = self.LIMITS[name]
            self.now[name] = min(hi, max(lo, x))

    def _measure(self):
        """Set the ADC registers to the raw values that compensate to the current conditions."""
        drv = self._drv
        t1, t2, t3 = self.dig_t
        adc_t = _bisect(
            lambda a: drv.compensate_temperature(a, t1, t2, t3)[0],
            self.now["temperature"] * 100,
            0,
            (1 << 20) - 1,
        )
        t_fine = drv.compensate_temperature(adc_t, t1, t2, t3)[1]
        adc_p = _bisect(
            lambda a: drv.compensate_pressure(a, t_fine, self.dig_p),
            self.now["pressure"] * 25600,
            0,
            (1 << 20) - 1,
            increasing=False,
        )
        adc_h = _bisect(
            lambda a: drv.compensate_humidity(a, t_fine, self.dig_h), self.now["humidity"] * 1024, 0, 0xFFFF
        )
        self.set_adc(adc_t, adc_p, adc_h)

    def convert(self):
        self._drift()
        self._measure()


class SimI2C:
    """``machine.I2C`` as the drivers use it: scan, readfrom_mem, writeto_mem; ENODEV for absent chips."""

    def __init__(self, devices: dict):
        self.devices = devices

    def scan(self):
        return sorted(self.devices)

    def _chip(self, addr):
        chip = self.devices.get(addr)
        if chip is None:
            raise OSError(19)  # ENODEV, what machine.I2C raises when nothing acknowledges
        return chip

    def readfrom_mem(self, addr, reg, n):
        return self._chip(addr).read_mem(reg, n)

    def writeto_mem(self, addr, reg, data):
        self._chip(addr).write_mem(reg, bytes(data))


class SimPin:
    """A digital input following a random schedule: ``idle`` most of the time, ``active`` for a while.

    PIR (HC-SR501 style): idle 0, active 1 for its hold time.  Door switch (GP17 pull-up, closed = 0): idle 0
    (door shut), active 1 (open)."""

    def __init__(self, rng: random.Random, idle_mean_s: float, active_s: tuple[float, float], clock=time.monotonic):
        self.rng = rng
        self.idle_mean_s = idle_mean_s
        self.active_s = active_s
        self.clock = clock
        self.level = 0
        self.until = clock() + rng.expovariate(1.0 / idle_mean_s)

    def value(self):
        now = self.clock()
        while now >= self.until:
            self.level ^= 1
            if self.level:
                self.until += self.rng.uniform(*self.active_s)
            else:
                self.until += self.rng.expovariate(1.0 / self.idle_mean_s)
        return self.level

    def irq(self, handler=None, trigger=None):  # polled instead (Hardware.pir_trigger is None)
        return None


class SimWLAN:
    """``network.WLAN(STA_IF)``: always associated; RSSI wanders between -75 and -45 dBm."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.rssi = rng.randint(-70, -50)

    def active(self, *args):
        return True

    def connect(self, ssid=None, key=None):
        return None

    def disconnect(self):
        return None

    def isconnected(self):
        return True

    def config(self, *args, **kwargs):
        return None

    def status(self, param=None):
        if param == "rssi":
            self.rssi = min(-45, max(-75, self.rssi + self.rng.choice((-1, 0, 0, 1))))
            return self.rssi
        return 3  # CYW43_LINK_UP
