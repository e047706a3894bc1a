"""DHT22 (AM2302) on one GPIO, through MicroPython's built-in ``dht`` module (it bit-bangs the 40-bit frame).

Wiring: the data line needs a pull-up (4.7-10 kOhm to 3V3; most breakout boards carry one, a bare sensor does
not).  ``measure()`` raises OSError(ETIMEDOUT) when the sensor does not answer and a plain
``Exception("checksum error")`` on a corrupted frame; the caller (``Sensors.read``) catches both.
"""

try:
    from iots6.compat import ticks_diff, ticks_ms
except ImportError:
    from time import ticks_diff, ticks_ms

# The DHT22 needs 2 s between conversions; asked sooner it answers with stale data or not at all.
MIN_INTERVAL_MS = 2000


class DHT22:
    def __init__(self, pin, dht_module=None, clock_ms=None):
        if dht_module is None:
            import dht as dht_module  # MicroPython's driver; tests put a fake of it on sys.path
        self.sensor = dht_module.DHT22(pin)
        self.clock_ms = clock_ms or ticks_ms
        self.last = None
        self.last_ms = None

    def read(self):
        """Dict of ``temperature`` degC and ``humidity`` %RH; raises what ``dht`` raises (see the module)."""
        now = self.clock_ms()
        if self.last is not None and ticks_diff(now, self.last_ms) < MIN_INTERVAL_MS:
            return self.last
        self.sensor.measure()
        self.last = {"temperature": self.sensor.temperature(), "humidity": self.sensor.humidity()}
        self.last_ms = now
        return self.last
