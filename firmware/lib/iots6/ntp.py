"""Set the RTC from NTP: retry with backoff until it works, then resync periodically (the RP2040's crystal
drifts a few seconds a day).  Readings are never published before ``clock_valid()``."""

from iots6.backoff import Backoff
from iots6.contract import clock_valid_year


class Ntp:
    def __init__(self, settime, clock, resync_s=6 * 3600, backoff=None, gmtime=None):
        self.settime = settime  # e.g. ntptime.settime, after setting ntptime.host
        self.clock = clock
        self.resync_ms = resync_s * 1000
        self.backoff = backoff or Backoff(2000, 300000)
        self.next_sync = None  # None: as soon as possible
        self.synced = False
        self.last_error = None
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
        """Sync when due; returns True when a sync happened now. Never raises OSError."""
        if not self.due():
            return False
        now = self.clock.ticks_ms()
        try:
            self.settime()
        except (OSError, OverflowError, IndexError) as exc:  # timeouts, DNS failures, short UDP answers
            self.last_error = "ntp: %s" % (exc,)
            self.next_sync = self.clock.ticks_add(now, self.backoff.next_delay())
            return False
        self.synced = True
        self.backoff.reset()
        self.next_sync = self.clock.ticks_add(now, self.resync_ms)
        return True
