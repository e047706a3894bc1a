"""Fake of the RP2040's timer and RTC: virtual milliseconds that advance only when the code sleeps or the test
says so, so a test can run hours of the main loop in a moment.  Same interface as ``iots6.compat.Clock``."""

import time

RTC_POWER_ON = time.mktime((2021, 1, 1, 0, 0, 0, 0, 0)) * 1000  # an unset RTC: before the contract's 2022


class FakeClock:
    def __init__(self, epoch_ms=RTC_POWER_ON):
        self.ticks = 0
        self.epoch = epoch_ms
        self.sleeps = 0

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
        self.ticks += ms
        self.epoch += ms

    def epoch_ms(self):
        return self.epoch

    def set_time(self, year, month, day, hour=0, minute=0, second=0):
        """What ntptime.settime() does to the RTC."""
        self.epoch = time.mktime((year, month, day, hour, minute, second, 0, 0)) * 1000
