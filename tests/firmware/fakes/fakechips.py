"""Fakes of the chips on the I2C bus (they cannot be attached to a WebAssembly interpreter): a BME280 serving
its calibration and ADC registers, an SHT31 answering its measure command, and an SSD1306 that keeps the
frame it is sent.  They implement the chips' register/command maps, not our drivers' logic."""

from bme280chip import DIG_H, DIG_P, DIG_T, BME280Registers


class FakeBME280Chip(BME280Registers):
    """A BME280 whose ADC registers hold fixed raw values (by default the datasheet's example, 25.08 degC); it
    records the first 64 register writes and counts conversions.  The register map itself is the simulator's
    (iotctl/simulate/bme280chip.py, copied into /fakes by run.mjs): one copy of the calibration packing."""

    def __init__(self, t=DIG_T, p=DIG_P, h=DIG_H, adc_t=519888, adc_p=415148, adc_h=30000, chip_id=0x60):
        super().__init__(t, p, h, chip_id)
        self.set_adc(adc_t, adc_p, adc_h)
        self.writes = []  # the first 64 register writes
        self.measurements = 0

    def write_mem(self, reg, data):
        if len(self.writes) < 64:
            self.writes.append((reg, data))
        super().write_mem(reg, data)

    def convert(self):
        self.measurements += 1  # CTRL_MEAS, forced mode: one conversion = one reading taken


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
