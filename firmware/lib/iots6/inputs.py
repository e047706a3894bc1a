"""PIR motion and the switch, as pure logic driven by a millisecond clock so tests can drive time.

The PIR output goes high on motion (HC-SR501 style, it holds high for its own delay); the pin IRQ only sets a
flag, and the main loop turns flags into events.  The switch (GP17, pull-up, closed = low) is sampled by the main
loop and debounced here: a level must be stable for ``debounce_ms`` before it counts, and each change is
reported once.
"""

try:
    from iots6.compat import ticks_diff
except ImportError:
    from time import ticks_diff


class Pir:
    """Motion events with a cooldown: after one event, further motion is not reported for ``cooldown_ms``."""

    def __init__(self, cooldown_ms, clock_ms):
        self.cooldown_ms = cooldown_ms
        self.clock_ms = clock_ms
        self.state = None  # last known level: True = motion
        self._triggered = False
        self._last_event = None

    def irq(self, pin=None):
        """The pin's rising-edge handler: set a flag and nothing else (no allocation inside an IRQ)."""
        self._triggered = True

    def update(self, level):
        """Feed the current pin level (polled) ; a rising edge counts like an IRQ."""
        if level and not self.state:
            self._triggered = True
        self.state = bool(level)

    def poll(self):
        """True when a motion event should be published now."""
        if not self._triggered:
            return False
        self._triggered = False
        now = self.clock_ms()
        if self._last_event is not None and ticks_diff(now, self._last_event) < self.cooldown_ms:
            return False
        self._last_event = now
        self.state = True
        return True


class Switch:
    """Debounced switch; ``closed`` is True when the contact is closed (pin pulled low)."""

    def __init__(self, debounce_ms, clock_ms, active_low=True):
        self.debounce_ms = debounce_ms
        self.clock_ms = clock_ms
        self.active_low = active_low
        self.closed = None  # the reported (stable) state; None until the first stable reading
        self._candidate = None
        self._since = None

    def update(self, level):
        """Feed a raw pin level; returns the new state (True/False) once per change, else None."""
        closed = (level == 0) if self.active_low else bool(level)
        now = self.clock_ms()
        if closed != self._candidate:
            self._candidate = closed
            self._since = now
        if closed == self.closed:
            return None
        if ticks_diff(now, self._since) >= self.debounce_ms:
            first = self.closed is None
            self.closed = closed
            return None if first else closed  # the state at boot is not an edge
        return None
