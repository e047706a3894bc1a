"""Find the sensors on the bus and read them into one dict of readings.

Auto-detection scans I2C0 (BME280/BMP280 at 0x76/0x77, SHT31 at 0x44/0x45).  A DHT22 or the RP2040's own
temperature sensor cannot be detected, so they are switched on by config.  The config's ``sensors`` map
overrides detection: ``{"bme280": false}`` ignores a chip that is present, ``{"dht22": true}`` adds one,
``{"internal_temp": true}`` uses the die temperature when nothing better measures the air.

The config server's form is also understood: ``{"climate": "auto"|"bme280"|"sht31"|"dht22"|"internal"|"none",
"bme280_address": 118|119}`` - a named climate sensor is the only one used.  ``bme280_address`` is the address
probed first; the other one is probed too (a breakout's default is 0x77, the server's default 0x76), so it only
decides which chip is used when both answer.

A sensor that fails costs its reading, never the loop: micropython-lib's ``dht`` raises a plain
``Exception("checksum error")`` on one bad frame, drivers raise OSError on a bus error; both are caught and kept
in ``errors``.
"""

from iots6.drivers import bme280, sht31

FIELDS = ("temperature", "humidity", "pressure")
# Which sensor wins for each quantity when several are fitted (best accuracy first).
PREFERENCE = {
    "temperature": ("sht31", "bme280", "dht22", "internal_temp"),
    "humidity": ("sht31", "bme280", "dht22"),
    "pressure": ("bme280",),
}


_CLIMATE = ("bme280", "sht31", "dht22", "internal_temp")


def _normalise(overrides):
    """Turn the config server's ``climate`` choice into per-driver switches."""
    climate = overrides.get("climate")
    if climate is None or climate == "auto":
        return overrides
    out = dict(overrides)
    chosen = "internal_temp" if climate == "internal" else climate
    for name in _CLIMATE:
        out[name] = name == chosen
    return out


def _why(exc):
    return str(exc) or exc.__class__.__name__


class Sensors:
    def __init__(self, i2c=None, overrides=None, dht_pin=None, adc=None, dht_module=None, clock_ms=None):
        self.drivers = {}
        self.errors = {}
        overrides = _normalise(overrides or {})
        found = []
        if i2c is not None:
            try:
                found = i2c.scan()
            except Exception as exc:  # noqa: BLE001 - no pull-ups or a shorted bus: run without I2C sensors
                self.errors["i2c"] = _why(exc)
        if overrides.get("bme280", True):
            addresses = bme280.ADDRESSES
            preferred = overrides.get("bme280_address")
            if preferred in addresses:
                addresses = (preferred,) + tuple(a for a in addresses if a != preferred)
            for addr in addresses:
                if addr in found:
                    try:
                        self.drivers["bme280"] = bme280.BME280(i2c, addr)
                        self.errors.pop("bme280", None)
                        break
                    except Exception as exc:  # noqa: BLE001 - another chip at that address, or a bus error
                        self.errors["bme280"] = _why(exc)
        if overrides.get("sht31", True):
            for addr in sht31.ADDRESSES:
                if addr in found:
                    self.drivers["sht31"] = sht31.SHT31(i2c, addr)
                    break
        if overrides.get("dht22", False) and dht_pin is not None:
            from iots6.drivers.dht22 import DHT22

            try:
                self.drivers["dht22"] = DHT22(dht_pin, dht_module, clock_ms)
            except Exception as exc:  # noqa: BLE001 - no ``dht`` module on this build
                self.errors["dht22"] = _why(exc)
        if overrides.get("internal_temp", False) and adc is not None:
            from iots6.drivers.internal_temp import InternalTemp

            self.drivers["internal_temp"] = InternalTemp(adc)

    def names(self):
        return sorted(self.drivers)

    def read(self):
        """``{"temperature": degC|None, "humidity": %RH|None, "pressure": hPa|None}``; a sensor that fails is
        skipped for this round and its error kept in ``self.errors``."""
        got = {}
        for name, driver in self.drivers.items():
            try:
                got[name] = driver.read()
                self.errors.pop(name, None)
            except Exception as exc:  # noqa: BLE001 - OSError from the bus, Exception("checksum error") from dht
                self.errors[name] = _why(exc)
        out = {}
        for field in FIELDS:
            out[field] = None
            for name in PREFERENCE[field]:
                value = got.get(name, {}).get(field)
                if value is not None:
                    out[field] = value
                    break
        return out
