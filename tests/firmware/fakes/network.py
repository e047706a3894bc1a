"""Fake of MicroPython's ``network`` module: the CYW43 Wi-Fi station, which does not exist in WebAssembly.

``FakeWLAN.ap_up`` says whether the access point is reachable; ``connect()`` then associates at once.
"""

STA_IF = 0
AP_IF = 1


class FakeWLAN:
    def __init__(self, interface=STA_IF):
        self.interface = interface
        self.is_active = False
        self.ap_up = True
        self.connected = False
        self.connects = 0
        self.rssi = -61

    def active(self, on=None):
        if on is None:
            return self.is_active
        self.is_active = bool(on)

    def connect(self, ssid=None, password=None):
        if not self.is_active:
            raise OSError("wifi not active")
        self.connects += 1
        self.ssid = ssid
        self.connected = self.ap_up

    def disconnect(self):
        self.connected = False

    def isconnected(self):
        return self.connected and self.ap_up

    def drop(self):
        """The access point goes away."""
        self.ap_up = False
        self.connected = False

    def status(self, param=None):
        if param == "rssi":
            return self.rssi
        return 3 if self.isconnected() else 0

    def config(self, *args, **kwargs):
        return None


WLAN = FakeWLAN
