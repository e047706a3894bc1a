"""Set the RTC from NTP: retry with backoff until it works, then resync periodically (the RP2040's crystal
drifts a few seconds a day).

The query is the firmware's own SNTP exchange (RFC 4330) over :meth:`iots6.net.Net.exchange`, not
micropython-lib's ``ntptime``: that one resolves the server with ``getaddrinfo`` (no timeout, ~7 s per DNS server,
past the watchdog during an internet outage) and raises ``ValueError`` on a short reply.  Here the name goes
through the bounded, cached resolver, the reply must answer our request (its origin timestamp is our random
transmit timestamp), come from a synchronised server (stratum 1-15, leap indicator not "alarm"), and anything
else is a failed sync, never a crash.
"""

import struct

from iots6.backoff import Backoff
from iots6.contract import clock_valid_year

NTP_PORT = 123
QUERY_TIMEOUT_MS = 1500
MIN_NTP_SECONDS = 3913056000  # 2024-01-01 as an NTP timestamp: anything lower wrapped in 2036 (era 1)


def _ntp_delta():
    """Seconds from 1900-01-01 (NTP's epoch) to the port's epoch (1970 on the rp2 port, 2000 on some others)."""
    import time

    return 3155673600 if time.gmtime(0)[0] == 2000 else 2208988800


def make_request(nonce):
    """A client request (LI 0, version 4, mode 3) whose transmit timestamp carries ``nonce`` (8 bytes)."""
    packet = bytearray(48)
    packet[0] = 0x23
    packet[40:48] = nonce
    return bytes(packet)


def parse_reply(reply, nonce, delta=None):
    """The server's transmit time in milliseconds since the port's epoch; ValueError for anything that is not a
    valid answer to our request."""
    if reply is None or len(reply) < 48:
        raise ValueError("short NTP reply")
    mode = reply[0] & 0x07
    if mode not in (4, 5) or reply[0] >> 6 == 3:
        raise ValueError("not a synchronised server reply")
    if not 1 <= reply[1] <= 15:
        raise ValueError("NTP kiss-o'-death or unsynchronised (stratum %d)" % reply[1])
    if bytes(reply[24:32]) != bytes(nonce):
        raise ValueError("NTP reply to another request")
    secs, frac = struct.unpack("!II", reply[40:48])
    if secs == 0:
        raise ValueError("NTP reply without a time")
    if secs < MIN_NTP_SECONDS:
        secs += 0x100000000
    if delta is None:
        delta = _ntp_delta()
    return (secs - delta) * 1000 + (frac * 1000 >> 32)


def query(net, host, rand=None, timeout_ms=QUERY_TIMEOUT_MS):
    """One bounded SNTP exchange with ``host``: its time in ms since the port's epoch. OSError/ValueError when
    there is no valid answer in time."""
    if rand is None:
        import random

        rand = random.getrandbits
    nonce = bytes([rand(8) for _ in range(8)])
    return net.exchange(host, NTP_PORT, make_request(nonce), lambda r: parse_reply(r, nonce), timeout_ms)


class Ntp:
    def __init__(self, settime, clock, resync_s=6 * 3600, backoff=None, gmtime=None):
        self.settime = settime  # () -> sets the RTC from the network, raises when it cannot
        self.clock = clock
        self.resync_ms = resync_s * 1000
        self.backoff = backoff or Backoff(2000, 300000)
        self.next_sync = None  # None: as soon as possible
        self.synced = False
        self.last_error = None
        self.failures = 0
        if gmtime is None:
            import time

            gmtime = time.gmtime
        self.gmtime = gmtime

    def clock_valid(self):
        """True when the RTC holds a plausible time (never true for the RP2040's power-on 2021-01-01)."""
        return clock_valid_year(self.gmtime(self.clock.epoch_ms() // 1000)[0])

    def due(self):
        return self.next_sync is None or self.clock.ticks_diff(self.clock.ticks_ms(), self.next_sync) >= 0

    def step(self):
        """Sync when due; returns True when a sync happened now. Never raises."""
        if not self.due():
            return False
        now = self.clock.ticks_ms()
        try:
            self.settime()
        except Exception as exc:  # noqa: BLE001 - timeouts, DNS failures, bad replies: try again later
            self.failures += 1
            self.last_error = "ntp: %s" % (exc,)
            self.next_sync = self.clock.ticks_add(now, self.backoff.next_delay())
            return False
        self.synced = True
        self.last_error = None
        self.backoff.reset()
        self.next_sync = self.clock.ticks_add(now, self.resync_ms)
        return True
