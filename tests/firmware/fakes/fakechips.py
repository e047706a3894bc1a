"""Fakes of the chips on the I2C bus (they cannot be attached to a WebAssembly interpreter): a BME280 serving
its calibration and ADC registers, an SHT31 answering its measure command, and an SSD1306 that keeps the
frame it is sent.  They implement the chips' register/command maps, not our drivers' logic."""

import struct


class FakeBME280Chip:
    """BME280 register map: chip id 0xD0, calibration 0x88.. / 0xA1 / 0xE1.., data 0xF7..0xFE."""

    def __init__(
        self,
        t=(27504, 26435, -1000),
        p=(36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000),
        h=(75, 362, 0, 324, 50, 30),
        adc_t=519888,
        adc_p=415148,
        adc_h=30000,
        chip_id=0x60,
    ):
        self.regs = bytearray(256)
        self.regs[0xD0] = chip_id
        self.regs[0x88:0xA0] = struct.pack("<HhhHhhhhhhhh", *(tuple(t) + tuple(p)))
        h1, h2, h3, h4, h5, h6 = h
        self.regs[0xA1] = h1
        self.regs[0xE1:0xE4] = struct.pack("<hB", h2, h3)
        self.regs[0xE4] = (h4 >> 4) & 0xFF
        self.regs[0xE5] = (h4 & 0x0F) | ((h5 & 0x0F) << 4)
        self.regs[0xE6] = (h5 >> 4) & 0xFF
        self.regs[0xE7] = h6 & 0xFF
        self.set_adc(adc_t, adc_p, adc_h)
        self.writes = []  # the first 64 register writes
        self.measurements = 0

    def set_adc(self, adc_t, adc_p, adc_h):
        r = self.regs
        r[0xF7], r[0xF8], r[0xF9] = (adc_p >> 12) & 0xFF, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4
        r[0xFA], r[0xFB], r[0xFC] = (adc_t >> 12) & 0xFF, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4
        r[0xFD], r[0xFE] = (adc_h >> 8) & 0xFF, adc_h & 0xFF

    def read_mem(self, reg, n):
        return self.regs[reg : reg + n]

    def write_mem(self, reg, data):
        if reg == 0xF4 and data[0] & 0x03 == 0x01:
            self.measurements += 1  # CTRL_MEAS, forced mode: one conversion = one reading taken
        if len(self.writes) < 64:
            self.writes.append((reg, data))
        self.regs[reg] = data[0]


def _crc8(data):
    # Written out again here (not imported from the driver) so a wrong driver CRC cannot agree with itself.
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


class FakeSHT31Chip:
    def __init__(self, raw_t=0x6666, raw_rh=0x8000, corrupt=False):
        self.raw_t = raw_t
        self.raw_rh = raw_rh
        self.corrupt = corrupt
        self.commands = []

    def write(self, data):
        self.commands.append(bytes(data))

    def read(self, n):
        t = bytes(((self.raw_t >> 8) & 0xFF, self.raw_t & 0xFF))
        rh = bytes(((self.raw_rh >> 8) & 0xFF, self.raw_rh & 0xFF))
        crc_t = _crc8(t) ^ (0x01 if self.corrupt else 0)
        return (t + bytes((crc_t,)) + rh + bytes((_crc8(rh),)))[:n]


class FakeSSD1306Chip:
    """Keeps commands and the last GDDRAM frame (the bytes after a 0x40 control byte)."""

    def __init__(self):
        self.commands = []  # the first 2000 (bounded: the soak test measures the heap)
        self.frame = None
        self.frames = 0

    def write(self, data):
        if data[0] == 0x80:
            if len(self.commands) < 2000:
                self.commands.append(data[1])
        elif data[0] == 0x40:
            self.frame = bytes(data[1:])
            self.frames += 1
