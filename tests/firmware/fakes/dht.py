"""Fake of MicroPython's ``dht`` module (the DHT22 is bit-banged on a real GPIO, absent here)."""


class FakeDHT22:
    temperature_c = 21.5
    humidity_rh = 40.2
    fail = False  # True: measure() times out like an unplugged sensor

    def __init__(self, pin):
        self.pin = pin
        self.measures = 0

    def measure(self):
        if FakeDHT22.fail:
            raise OSError(110)  # ETIMEDOUT, what the real module raises
        self.measures += 1

    def temperature(self):
        return FakeDHT22.temperature_c

    def humidity(self):
        return FakeDHT22.humidity_rh


DHT22 = FakeDHT22
