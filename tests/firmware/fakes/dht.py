"""Fake of MicroPython's ``dht`` module (the DHT22 is bit-banged on a real GPIO, absent here).

It fails the way micropython-lib's driver does: ``measure()`` raises OSError(110) (ETIMEDOUT) when the sensor
does not answer and a plain ``Exception("checksum error")`` when a frame arrives corrupted.  ``fail`` is None
(works), "timeout", "checksum", or a number n: every n-th measurement has a checksum error.
"""


class FakeDHT22:
    temperature_c = 21.5
    humidity_rh = 40.2
    fail = None

    def __init__(self, pin):
        self.pin = pin
        self.measures = 0
        self.attempts = 0

    def measure(self):
        self.attempts += 1
        fail = FakeDHT22.fail
        if fail == "timeout":
            raise OSError(110)
        if fail == "checksum" or (isinstance(fail, int) and self.attempts % fail == 0):
            raise Exception("checksum error")
        self.measures += 1

    def temperature(self):
        return FakeDHT22.temperature_c

    def humidity(self):
        return FakeDHT22.humidity_rh


DHT22 = FakeDHT22
