"""Exponential backoff with jitter, shared by Wi-Fi, MQTT, NTP and config fetches."""

import random


class Backoff:
    """Delays of base, 2*base, 4*base ... capped at ``max_ms``, each with +-``jitter`` (a fraction) so a fleet
    that lost its access point together does not reconnect in lockstep."""

    def __init__(self, base_ms=1000, max_ms=60000, jitter=0.25, rand=None):
        self.base_ms = base_ms
        self.max_ms = max_ms
        self.jitter = jitter
        self.rand = rand or random.random
        self.failures = 0

    def next_delay(self):
        """Record a failure and return how long to wait before the next try, in ms."""
        delay = self.base_ms << min(self.failures, 16)
        if delay > self.max_ms:
            delay = self.max_ms
        self.failures += 1
        spread = delay * self.jitter
        return int(delay - spread + 2 * spread * self.rand())

    def reset(self):
        self.failures = 0
