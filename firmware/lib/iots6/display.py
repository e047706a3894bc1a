"""SSD1306 128x64 OLED over I2C (address 0x3C on the shared I2C0 bus), and the status screen drawn on it.

The driver keeps a 1 KiB frame in a ``framebuf.FrameBuffer`` (MONO_VLSB: each byte is 8 vertical pixels, the
SSD1306's own page layout) and sends it with one I2C write per ``show()``.
"""

ADDRESS = 0x3C
WIDTH = 128
HEIGHT = 64

# SSD1306 commands (datasheet section 9 / 10.1).
SET_CONTRAST = 0x81
SET_ENTIRE_ON = 0xA4
SET_NORM_INV = 0xA6
SET_DISP = 0xAE  # | 1 = on
SET_MEM_ADDR = 0x20
SET_COL_ADDR = 0x21
SET_PAGE_ADDR = 0x22
SET_DISP_START_LINE = 0x40
SET_SEG_REMAP = 0xA0
SET_MUX_RATIO = 0xA8
SET_COM_OUT_DIR = 0xC0
SET_DISP_OFFSET = 0xD3
SET_COM_PIN_CFG = 0xDA
SET_DISP_CLK_DIV = 0xD5
SET_PRECHARGE = 0xD9
SET_VCOM_DESEL = 0xDB
SET_CHARGE_PUMP = 0x8D


class SSD1306:
    def __init__(self, i2c, address=ADDRESS, width=WIDTH, height=HEIGHT):
        import framebuf  # MicroPython's C module; imported here so the rest of this file runs under CPython

        self.i2c = i2c
        self.address = address
        self.width = width
        self.height = height
        self.pages = height // 8
        self.buffer = bytearray(self.pages * width)
        self.fb = framebuf.FrameBuffer(self.buffer, width, height, framebuf.MONO_VLSB)
        self._cmd_buf = bytearray(2)
        self.init_display()

    def init_display(self):
        for cmd in (
            SET_DISP,  # off while configuring
            SET_MEM_ADDR, 0x00,  # horizontal addressing: one write fills the whole frame
            SET_DISP_START_LINE,
            SET_SEG_REMAP | 0x01,  # column 127 mapped to SEG0 (module is mounted rotated)
            SET_MUX_RATIO, self.height - 1,
            SET_COM_OUT_DIR | 0x08,  # scan COM[N-1] to COM0
            SET_DISP_OFFSET, 0x00,
            SET_COM_PIN_CFG, 0x12,  # alternative COM pin config, needed for 64 rows
            SET_DISP_CLK_DIV, 0x80,
            SET_PRECHARGE, 0xF1,  # internal charge pump, not external VCC
            SET_VCOM_DESEL, 0x30,  # 0.83 * Vcc
            SET_CONTRAST, 0xFF,
            SET_ENTIRE_ON,  # display follows RAM
            SET_NORM_INV,  # not inverted
            SET_CHARGE_PUMP, 0x14,  # enable the charge pump (the module has no 7-9 V supply)
            SET_DISP | 0x01,
        ):
            self.write_cmd(cmd)

    def write_cmd(self, cmd):
        self._cmd_buf[0] = 0x80  # control byte: Co=1, D/C#=0 -> one command byte follows
        self._cmd_buf[1] = cmd
        self.i2c.writeto(self.address, self._cmd_buf)

    def contrast(self, value):
        self.write_cmd(SET_CONTRAST)
        self.write_cmd(value & 0xFF)

    def power(self, on):
        self.write_cmd(SET_DISP | (1 if on else 0))

    def show(self):
        self.write_cmd(SET_COL_ADDR)
        self.write_cmd(0)
        self.write_cmd(self.width - 1)
        self.write_cmd(SET_PAGE_ADDR)
        self.write_cmd(0)
        self.write_cmd(self.pages - 1)
        # control byte 0x40 (Co=0, D/C#=1): everything after it is GDDRAM data.
        self.i2c.writevto(self.address, (b"\x40", self.buffer))


def _fmt(value, unit, digits=1):
    if value is None:
        return "--"
    return ("%." + str(digits) + "f%s") % (value, unit)


def status_lines(state, temperature_unit="C"):
    """The eight 16-character lines of the status screen for ``state`` (a dict the app keeps up to date)."""
    r = state.get("readings") or {}
    t = r.get("temperature")
    unit = "C"
    if t is not None and temperature_unit == "F":
        t = t * 9 / 5 + 32
        unit = "F"
    clock = state.get("clock_text") or ""
    if state.get("clock") is False:
        clock = "no clock"
    lost = state.get("dropped") or 0
    lines = [
        str(state.get("device_id") or "?")[:16],
        "WiFi " + ("ok" if state.get("wifi") else (state.get("wifi_problem") or "--"))
        + (" %ddBm" % state["rssi"] if state.get("rssi") else ""),
        "MQTT " + ("ok" if state.get("mqtt") else "--") + (" " + clock if clock else ""),
        "T " + _fmt(t, unit) + " H " + _fmt(r.get("humidity"), "%", 0),
        "P " + _fmt(r.get("pressure"), "hPa"),
        "M " + {True: "yes", False: "no"}.get(r.get("motion"), "-") + " S "
        + {True: "closed", False: "open"}.get(r.get("switch"), "-"),
        "queued %d" % (state.get("queued") or 0) + (" lost %d" % lost if lost else ""),
        str(state.get("error") or "")[:16],
    ]
    return [line[:16] for line in lines]


def wrap(text, width=16, rows=4):
    """``text`` broken at spaces into at most ``rows`` lines of ``width`` characters."""
    out = []
    line = ""
    for word in text.split():
        while len(word) > width:
            if line:
                out.append(line)
                line = ""
            out.append(word[:width])
            word = word[width:]
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            out.append(line)
            line = word
    if line:
        out.append(line)
    return out[:rows]


def config_error_lines(problem):
    """The screen shown while device.json is missing or invalid: what is wrong, and how to fix it."""
    lines = ["CONFIG ERROR"] + wrap(problem or "device.json", 16, 4)
    while len(lines) < 5:
        lines.append("")
    lines += ["fix: mpremote cp", "device.json :", "(board waits)"]
    return [line[:16] for line in lines[:8]]


class StatusScreen:
    """Draws the status lines on a driver with ``fb`` and ``show()`` (8 px font -> 16 columns x 8 rows)."""

    def __init__(self, driver):
        self.driver = driver
        self.last = None

    def render(self, state, temperature_unit="C", force=False):
        return self.draw(status_lines(state, temperature_unit), force)

    def draw(self, lines, force=False):
        """Put eight lines on the screen (skipped when they are what is already shown)."""
        if lines == self.last and not force:
            return False  # the I2C write of a full frame takes ~25 ms at 400 kHz; skip it when nothing changed
        fb = self.driver.fb
        fb.fill(0)
        for row, line in enumerate(lines):
            fb.text(line, 0, row * 8, 1)
        self.driver.show()
        self.last = lines
        return True
