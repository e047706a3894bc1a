"""Wi-Fi station: connect, notice a drop, reconnect with exponential backoff and jitter - never blocking long.

``wlan`` is a ``network.WLAN(network.STA_IF)`` (or a fake with the same methods).  ``step()`` is called from the
main loop; it starts a connection attempt and returns at once, the CYW43 driver does the association.
"""

from iots6.backoff import Backoff

CONNECT_TIMEOUT_MS = 20000  # WPA2 association + DHCP usually take 2-6 s on the Pico W


class Wifi:
    def __init__(self, wlan, ssid, password, clock, backoff=None):
        self.wlan = wlan
        self.ssid = ssid
        self.password = password
        self.clock = clock
        self.backoff = backoff or Backoff(2000, 120000)
        self.attempt_started = None
        self.next_try = None
        self.last_error = None

    def connected(self):
        try:
            return bool(self.wlan.isconnected())
        except OSError:
            return False

    def rssi(self):
        try:
            return int(self.wlan.status("rssi"))
        except (OSError, ValueError, TypeError):
            return None

    def step(self):
        """Make progress toward being connected; returns True when connected."""
        if self.connected():
            if self.attempt_started is not None:
                self.attempt_started = None
                self.backoff.reset()
            return True
        clock = self.clock
        now = clock.ticks_ms()
        if self.attempt_started is not None:
            if clock.ticks_diff(now, self.attempt_started) < CONNECT_TIMEOUT_MS:
                return False
            self.attempt_started = None
            self.last_error = "wifi timeout"
            self.next_try = clock.ticks_add(now, self.backoff.next_delay())
            try:
                self.wlan.disconnect()  # reset the driver's state machine before the next try
            except OSError:
                pass
            return False
        if self.next_try is not None and clock.ticks_diff(now, self.next_try) < 0:
            return False
        try:
            self.wlan.active(True)
            self.wlan.connect(self.ssid, self.password)
            self.attempt_started = now
        except OSError as exc:
            self.last_error = "wifi: %s" % exc
            self.next_try = clock.ticks_add(now, self.backoff.next_delay())
        return False
