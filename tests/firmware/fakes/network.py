"""Fake of MicroPython's ``network`` module: the CYW43 Wi-Fi station, which does not exist in WebAssembly.

The association runs on the virtual clock as the driver's does: ``connect()`` returns at once with status 1
(joining); ``ASSOCIATE_MS`` later the status is 3 (up, with an address from DHCP), or -3 (wrong password), -2 (no
such network; after ``SCAN_MS``) or -1 (failed).  ``ap_up`` switches the access point; ``password`` is what it
accepts (None: whatever is given).  ``status("rssi")`` is counted: it is an SPI transaction on the real chip.
"""

import fakeclock

STA_IF = 0
AP_IF = 1
STAT_IDLE = 0
STAT_CONNECTING = 1
STAT_GOT_IP = 3
STAT_CONNECT_FAIL = -1
STAT_NO_AP_FOUND = -2
STAT_WRONG_PASSWORD = -3
ASSOCIATE_MS = 2500
SCAN_MS = 5000

_WLANS = {}


class FakeWLAN:
    def __init__(self, interface=STA_IF):
        self.clock = fakeclock.current()
        self.interface = interface
        self.is_active = False
        self.ap_up = True
        self.ssid_seen = "lab"  # the access point's name; None: any name works
        self.password = None
        self.connects = 0
        self.rssi = -61
        self.rssi_queries = 0
        self.dns = "192.168.1.1"
        self.ip = "192.168.1.50"
        self.joining_since = None
        self.joined = False
        self.given = (None, None)

    def active(self, on=None):
        if on is None:
            return self.is_active
        self.is_active = bool(on)

    def connect(self, ssid=None, key=None):
        if not self.is_active:
            raise OSError("wifi not active")
        self.connects += 1
        self.given = (ssid, key)
        self.joined = False
        self.joining_since = self.clock.ticks

    def disconnect(self):
        self.joined = False
        self.joining_since = None

    def _status(self):
        if self.joined:
            if not self.ap_up:
                self.joined = False
                self.joining_since = None
                return STAT_IDLE
            return STAT_GOT_IP
        if self.joining_since is None:
            return STAT_IDLE
        waited = self.clock.ticks - self.joining_since
        ssid, key = self.given
        if not self.ap_up or (self.ssid_seen is not None and ssid != self.ssid_seen):
            return STAT_NO_AP_FOUND if waited >= SCAN_MS else STAT_CONNECTING
        if waited < ASSOCIATE_MS:
            return STAT_CONNECTING
        if self.password is not None and key != self.password:
            return STAT_WRONG_PASSWORD
        self.joined = True
        return STAT_GOT_IP

    def isconnected(self):
        return self._status() == STAT_GOT_IP

    def drop(self):
        """The access point goes away."""
        self.ap_up = False
        self.joined = False

    def status(self, param=None):
        if param == "rssi":
            self.rssi_queries += 1
            if not self.isconnected():
                raise OSError(-1)
            return self.rssi
        return self._status()

    def ifconfig(self):
        if not self.isconnected():
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        return (self.ip, "255.255.255.0", "192.168.1.1", self.dns)

    def config(self, *args, **kwargs):
        return None


def reset():
    """A fresh radio for a new test (the module outlives one test)."""
    _WLANS.clear()


def WLAN(interface=STA_IF):
    """network.WLAN(STA_IF) returns the one station interface every time, as on the board."""
    if interface not in _WLANS:
        _WLANS[interface] = FakeWLAN(interface)
    return _WLANS[interface]
