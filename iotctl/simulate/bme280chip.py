"""A Bosch BME280's register map, as the chip presents it on the I2C bus: chip id at 0xD0, the calibration words
at 0x88..0xA1 and 0xE1..0xE7 (packed as the datasheet, BST-BME280-DS002 section 5.4, lays them out) and the ADC
results at 0xF7..0xFE.  A write of forced mode to CTRL_MEAS (0xF4) is one conversion (``convert()``).

The one copy of this packing: the simulator's ``SimBME280`` (iotctl.simulate.hardware) and the firmware tests'
``FakeBME280Chip`` (tests/firmware/fakes/fakechips.py) both extend :class:`BME280Registers`.  The fake runs
inside the MicroPython interpreter (tests/firmware/mpy/run.mjs copies this file into its ``/fakes``), so this
module is written in the subset both interpreters run: no annotations, dataclasses or ``__future__`` imports.
It implements the chip, not the driver: the driver's decoding (firmware/lib/iots6/drivers/bme280.py) is checked
against the datasheet's worked example, which these calibration words are.
"""

import struct

CHIP_ID_BME280 = 0x60
REG_CHIP_ID = 0xD0
REG_CTRL_MEAS = 0xF4
MODE_FORCED = 0x01

# Calibration words of the datasheet's worked example (section 8.1), a typical part: dig_T1..T3, dig_P1..P9,
# dig_H1..H6.
DIG_T = (27504, 26435, -1000)
DIG_P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
DIG_H = (75, 362, 0, 324, 50, 30)


class BME280Registers:
    """The register file of one BME280 with calibration ``t``/``p``/``h``; the ADC registers hold zeros until
    ``set_adc``."""

    def __init__(self, t=DIG_T, p=DIG_P, h=DIG_H, chip_id=CHIP_ID_BME280):
        self.dig_t = tuple(t)
        self.dig_p = tuple(p)
        self.dig_h = tuple(h)
        regs = self.regs = bytearray(256)
        regs[REG_CHIP_ID] = chip_id
        regs[0x88:0xA0] = struct.pack("<HhhHhhhhhhhh", *(self.dig_t + self.dig_p))  # dig_T1..dig_P9
        h1, h2, h3, h4, h5, h6 = self.dig_h
        regs[0xA1] = h1
        regs[0xE1:0xE4] = struct.pack("<hB", h2, h3)
        regs[0xE4] = (h4 >> 4) & 0xFF  # H4 = 0xE4[7:0] << 4 | 0xE5[3:0]
        regs[0xE5] = (h4 & 0x0F) | ((h5 & 0x0F) << 4)  # H5 = 0xE6[7:0] << 4 | 0xE5[7:4]
        regs[0xE6] = (h5 >> 4) & 0xFF
        regs[0xE7] = h6 & 0xFF

    def set_adc(self, adc_t, adc_p, adc_h):
        """Raw 20-bit temperature and pressure and 16-bit humidity, as a conversion leaves them."""
        r = self.regs
        r[0xF7], r[0xF8], r[0xF9] = (adc_p >> 12) & 0xFF, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4
        r[0xFA], r[0xFB], r[0xFC] = (adc_t >> 12) & 0xFF, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4
        r[0xFD], r[0xFE] = (adc_h >> 8) & 0xFF, adc_h & 0xFF

    def read_mem(self, reg, n):
        return bytes(self.regs[reg : reg + n])

    def write_mem(self, reg, data):
        self.regs[reg] = data[0]
        if reg == REG_CTRL_MEAS and data[0] & 0x03 == MODE_FORCED:
            self.convert()
        # STATUS (0xF3) stays 0: the conversion is "done" by the time the driver polls it.

    def convert(self):
        """One forced-mode conversion; the ADC registers keep their values unless a subclass sets new ones."""
