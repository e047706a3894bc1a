"""Wi-Fi station: connect, notice a drop, reconnect with exponential backoff and jitter - never blocking long.

``wlan`` is a ``network.WLAN(network.STA_IF)`` (or a fake with the same methods).  ``step()`` is called from the
main loop; it starts a connection attempt and returns at once, the CYW43 driver does the association.  While an
attempt runs, the driver's status tells a wrong password or a missing network apart from a slow one, so the
OLED can say which (a timeout is reported only when the driver says nothing better).
"""

from iots6.backoff import Backoff

CONNECT_TIMEOUT_MS = 20000  # WPA2 association + DHCP usually take 2-6 s on the Pico W
RSSI_MS = 10000  # the RSSI is a CYW43 ioctl over SPI: ask at most this often
# network.STAT_* on the rp2 port (CYW43_LINK_*): 1 joining, 2 no IP yet, 3 up, negative = failed.
STAT_GOT_IP = 3
STAT_CONNECT_FAIL = -1
STAT_NO_AP_FOUND = -2
STAT_WRONG_PASSWORD = -3
FAILURES = {
    STAT_WRONG_PASSWORD: "wifi: wrong password",
    STAT_NO_AP_FOUND: "wifi: network not found",
    STAT_CONNECT_FAIL: "wifi: connection failed",
}
SHORT = {STAT_WRONG_PASSWORD: "bad passwd", STAT_NO_AP_FOUND: "no network", STAT_CONNECT_FAIL: "failed"}
WRONG_PASSWORD_BACKOFF_MS = 60000  # a wrong password does not fix itself; retry slowly (the AP may change)


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
        self.problem = None  # a short word for the OLED's Wi-Fi line: "bad passwd", "no network", "timeout"
        self.last_status = None
        self._rssi = None
        self._rssi_at = None

    def connected(self):
        try:
            return bool(self.wlan.isconnected())
        except OSError:
            return False

    def rssi(self):
        """Signal strength in dBm, asked from the driver at most every RSSI_MS (None when unknown)."""
        now = self.clock.ticks_ms()
        if self._rssi_at is None or self.clock.ticks_diff(now, self._rssi_at) >= RSSI_MS:
            self._rssi_at = now
            try:
                self._rssi = int(self.wlan.status("rssi"))
            except (OSError, ValueError, TypeError):
                self._rssi = None
        return self._rssi

    def _status(self):
        try:
            return self.wlan.status()
        except (OSError, ValueError, TypeError):
            return None

    def _failed(self, now, message, delay=None, short="timeout"):
        self.attempt_started = None
        self.last_error = message
        self.problem = short
        self.next_try = self.clock.ticks_add(now, delay if delay is not None else self.backoff.next_delay())
        try:
            self.wlan.disconnect()  # reset the driver's state machine before the next try
        except OSError:
            pass

    def step(self):
        """Make progress toward being connected; returns True when connected."""
        if self.connected():
            if self.attempt_started is not None or self.last_error:
                self.attempt_started = None
                self.last_error = None
                self.problem = None
                self.backoff.reset()
            return True
        self._rssi_at = None
        clock = self.clock
        now = clock.ticks_ms()
        if self.attempt_started is not None:
            status = self._status()
            self.last_status = status
            if status in FAILURES:
                delay = None
                if status == STAT_WRONG_PASSWORD:
                    delay = max(WRONG_PASSWORD_BACKOFF_MS, self.backoff.next_delay())
                self._failed(now, FAILURES[status], delay, SHORT[status])
                return False
            if clock.ticks_diff(now, self.attempt_started) < CONNECT_TIMEOUT_MS:
                return False
            self._failed(now, "wifi: timeout (status %s)" % (status,))
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
