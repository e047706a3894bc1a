"""Fake of the RP2040's timer and RTC: virtual milliseconds that advance only when the code sleeps, a fake
blocking call waits, or the test says so, so a test can run hours of the main loop in a moment.  Same interface as
``iots6.compat.Clock``.

Blocking fakes (sockets, DNS, Wi-Fi) call ``advance(ms)``.  A watchdog armed on the clock (``machine.WDT``, see
machine.py) that is not fed before its deadline raises :class:`WatchdogReset` at that virtual instant, in the middle
of the blocking call, as the real one resets the chip.  ``stop_at`` ends a run of ``main()`` (which never returns)
with :class:`SimulationOver`.  Both derive from BaseException: the firmware's never-crash guards catch
``Exception`` and must not swallow a reset.
"""

import time

RTC_POWER_ON = time.mktime((2021, 1, 1, 0, 0, 0, 0, 0)) * 1000  # an unset RTC: before the contract's 2022
FOREVER_MS = 3600 * 1000  # what "blocks forever" costs when no watchdog ends it first
CURRENT = [None]  # the clock the last FakeClock() made; machine.WDT/RTC and the network fakes bind to it


class WatchdogReset(BaseException):
    """The watchdog was not fed in time: the board resets (RAM and RTC lost, flash kept)."""


class SimulationOver(BaseException):
    """The test's time is up (``FakeClock.stop_at``)."""


class BlockedForever(BaseException):
    """A blocking call with no timeout and no watchdog to end it: on a board it would hang forever."""


class FakeClock:
    def __init__(self, epoch_ms=RTC_POWER_ON):
        self.ticks = 0
        self.epoch = epoch_ms
        self.sleeps = 0
        self.wdt = None  # a FakeWDT armed on this clock
        self.stop_at = None
        self.max_unfed = 0  # longest interval between two watchdog feeds seen (ms), for assertions
        self.events = []  # (ticks, fn), sorted
        CURRENT[0] = self

    def ticks_ms(self):
        return self.ticks

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, delta):
        return a + delta

    def sleep_ms(self, ms):
        self.sleeps += 1
        self.advance(ms)

    def advance(self, ms):
        """Move time forward ``ms``.  Scheduled events (``at``) run at their instant, even in the middle of a
        blocking call; a watchdog deadline or the end of the run inside the interval ends it there."""
        target = self.ticks + ms
        while True:
            event = self.events[0] if self.events and self.events[0][0] <= target else None
            until = event[0] if event is not None else target
            wdt = self.wdt
            if wdt is not None and wdt.deadline <= until:
                self._move(wdt.deadline - self.ticks)
                wdt.fire()
                raise WatchdogReset("watchdog not fed for %d ms (at %d ms)" % (wdt.timeout, self.ticks))
            if self.stop_at is not None and self.stop_at <= until:
                self._move(self.stop_at - self.ticks)
                raise SimulationOver()
            self._move(until - self.ticks)
            if event is None:
                return
            self.events.pop(0)
            event[1]()

    def at(self, ticks, fn):
        """Run ``fn()`` when virtual time reaches ``ticks`` (a scripted outage, a file written by hand...)."""
        self.events.append((ticks, fn))
        self.events.sort(key=lambda e: e[0])

    def _move(self, ms):
        if ms > 0:
            self.ticks += ms
            self.epoch += ms

    def block(self, ms=None):
        """A blocking wait: ``ms`` of virtual time, or forever (None)."""
        if ms is None:
            self.advance(FOREVER_MS)
            raise BlockedForever("a call blocked forever with no watchdog armed")
        self.advance(ms)

    def epoch_ms(self):
        return self.epoch

    def set_time(self, year, month, day, hour=0, minute=0, second=0):
        """What an NTP sync does to the RTC."""
        self.epoch = time.mktime((year, month, day, hour, minute, second, 0, 0)) * 1000

    def power_cycle(self):
        """A reset: the RTC starts again from its power-on value; the tick counter restarts (here: keeps going,
        which the firmware cannot tell apart), the watchdog is off until the firmware arms it again."""
        self.epoch = RTC_POWER_ON
        self.wdt = None


def current():
    return CURRENT[0]
