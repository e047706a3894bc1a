"""Status LED patterns: data, plus a tick function that says whether the LED is on at a given time.

A pattern is a tuple of durations in ms, alternately on and off, starting with on; it repeats.
On the Pico W the onboard LED hangs off the CYW43 Wi-Fi chip (``Pin("LED")``), so each change is an SPI
transaction: ``Led.tick`` writes only when the level changes.
"""

# The legend for a person holding the board is in firmware/README.md ("LED and OLED").
_DOT, _DASH, _GAP = 150, 450, 150
PATTERNS = {
    "boot": (1000, 0),  # steady on while starting
    "wifi_connecting": (100, 100),  # fast blink
    "online": (60, 140, 60, 1740),  # heartbeat: a double blip every 2 s, MQTT connected
    "offline": (1000, 1000),  # slow blink: Wi-Fi up, no broker; readings wait in the flash buffer
    "no_clock": (600, 300, 600, 1500),  # two long flashes: Wi-Fi up but no time yet; readings wait to be dated
    "error": (100, 100, 100, 100, 100, 1500),  # triple flash: a sensor, the flash or the config fetch keeps failing
    # SOS (... --- ...): device.json is missing or invalid; the board waits (no watchdog), the REPL is reachable.
    "config_error": (_DOT, _GAP, _DOT, _GAP, _DOT, 450, _DASH, _GAP, _DASH, _GAP, _DASH, 450, _DOT, _GAP, _DOT, _GAP,
                     _DOT, 1500),
    "off": (0, 1000),
}


def select(state):
    """The pattern name for the app's state dict:
    no_clock > error > boot > wifi_connecting > offline > online.  No clock comes first: nothing can be published
    until it is set, whatever else is wrong."""
    if state.get("clock") is False:
        return "no_clock"
    if state.get("error"):
        return "error"
    if state.get("booting"):
        return "boot"
    if not state.get("wifi"):
        return "wifi_connecting"
    if not state.get("mqtt"):
        return "offline"
    return "online"


def level_at(pattern, t_ms):
    """True when ``pattern`` has the LED on at ``t_ms`` after the pattern started."""
    period = 0
    for d in pattern:
        period += d
    if period == 0:
        return False
    t = t_ms % period
    on = True
    for d in pattern:
        if t < d:
            return on
        t -= d
        on = not on
    return False


class Led:
    def __init__(self, pin, clock_ms, enabled=True):
        self.pin = pin
        self.clock_ms = clock_ms
        self.enabled = enabled
        self.name = None
        self.started = 0
        self.level = None

    def set_pattern(self, name):
        if name != self.name:
            self.name = name
            self.started = self.clock_ms()

    def tick(self):
        """Drive the pin for now; returns the level."""
        from iots6.compat import ticks_diff

        if not self.enabled or self.name is None:
            level = False
        else:
            level = level_at(PATTERNS[self.name], ticks_diff(self.clock_ms(), self.started))
        if level != self.level:
            self.pin.value(1 if level else 0)
            self.level = level
        return level
