"""Bosch BME280 (and BMP280) temperature/humidity/pressure over I2C.

Compensation is the integer form of the Bosch datasheet (BST-BME280-DS002 section 4.2.3 / 8.2): the 32-bit
temperature, the 64-bit pressure and the 32-bit humidity routines.  Python ints never overflow, so the 64-bit
arithmetic is exact on the RP2040 (whose floats are single precision and would lose the last digits of Pa).
"""

import struct

try:
    from iots6.compat import sleep_ms as _sleep_ms
except ImportError:  # loaded on its own
    from time import sleep_ms as _sleep_ms

ADDRESSES = (0x76, 0x77)  # SDO tied low -> 0x76, high -> 0x77
CHIP_ID_BME280 = 0x60
CHIP_ID_BMP280 = 0x58  # same pressure/temperature part, no humidity

REG_CALIB_TP = 0x88  # 0x88..0x9F: dig_T1..dig_P9, 24 bytes little endian; 0xA1: dig_H1
REG_CALIB_H1 = 0xA1
REG_CALIB_H = 0xE1  # 0xE1..0xE7: dig_H2..dig_H6, packed (H4/H5 share a nibble in 0xE5)
REG_CHIP_ID = 0xD0
REG_RESET = 0xE0
REG_CTRL_HUM = 0xF2  # humidity oversampling; only latched by the next write to CTRL_MEAS
REG_STATUS = 0xF3  # bit 3 "measuring"
REG_CTRL_MEAS = 0xF4  # osrs_t[7:5] osrs_p[4:2] mode[1:0]
REG_DATA = 0xF7  # 0xF7..0xFE: press msb/lsb/xlsb, temp msb/lsb/xlsb, hum msb/lsb

OSRS_X1 = 1
MODE_FORCED = 1  # one measurement then back to sleep: ~1 uA between readings


def _div_trunc(a, b):
    """C integer division (truncates toward zero), which the datasheet code relies on."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def compensate_temperature(adc_t, t1, t2, t3):
    """Returns (temperature in 0.01 degC, t_fine). Datasheet example: adc_T=519888 -> 2508, t_fine 128422."""
    var1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
    var2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * t3) >> 14
    t_fine = var1 + var2
    return (t_fine * 5 + 128) >> 8, t_fine


def compensate_pressure(adc_p, t_fine, p):
    """Pressure in Pa as Q24.8 (divide by 256), from the 64-bit routine; ``p`` is (dig_P1, ..., dig_P9)."""
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = p
    var1 = t_fine - 128000
    var2 = var1 * var1 * p6
    var2 = var2 + ((var1 * p5) << 17)
    var2 = var2 + (p4 << 35)
    var1 = ((var1 * var1 * p3) >> 8) + ((var1 * p2) << 12)
    var1 = (((1 << 47) + var1) * p1) >> 33
    if var1 == 0:
        return 0  # avoid a division by zero on a chip with empty calibration
    pa = 1048576 - adc_p
    pa = _div_trunc(((pa << 31) - var2) * 3125, var1)
    var1 = (p9 * (pa >> 13) * (pa >> 13)) >> 25
    var2 = (p8 * pa) >> 19
    return ((pa + var1 + var2) >> 8) + (p7 << 4)


def compensate_humidity(adc_h, t_fine, h):
    """Relative humidity as Q22.10 %RH (divide by 1024); ``h`` is (dig_H1, ..., dig_H6)."""
    h1, h2, h3, h4, h5, h6 = h
    v = t_fine - 76800
    v = ((((adc_h << 14) - (h4 << 20) - (h5 * v)) + 16384) >> 15) * (
        ((((((v * h6) >> 10) * (((v * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14
    )
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4)
    if v < 0:
        v = 0
    if v > 419430400:  # 100 %RH in Q22.10 << 12
        v = 419430400
    return v >> 12


class BME280:
    """One BME280/BMP280 on ``i2c`` (a machine.I2C or anything with readfrom_mem/writeto_mem)."""

    def __init__(self, i2c, address=0x76, sleep_ms=None):
        self.i2c = i2c
        self.address = address
        self.sleep_ms = sleep_ms or _sleep_ms
        self.chip_id = self._read(REG_CHIP_ID, 1)[0]
        if self.chip_id not in (CHIP_ID_BME280, CHIP_ID_BMP280):
            raise OSError("not a BME280/BMP280: chip id 0x%02x" % self.chip_id)
        self.has_humidity = self.chip_id == CHIP_ID_BME280
        self._load_calibration()

    def _read(self, reg, n):
        return self.i2c.readfrom_mem(self.address, reg, n)

    def _write(self, reg, value):
        self.i2c.writeto_mem(self.address, reg, bytes((value,)))

    def _load_calibration(self):
        c = struct.unpack("<HhhHhhhhhhhh", self._read(REG_CALIB_TP, 24))
        self.dig_t = c[0:3]
        self.dig_p = c[3:12]
        if self.has_humidity:
            h1 = self._read(REG_CALIB_H1, 1)[0]
            e = self._read(REG_CALIB_H, 7)
            h2, h3 = struct.unpack("<hB", e[0:3])
            e4 = struct.unpack("<b", e[3:4])[0]  # signed MSB of H4
            e6 = struct.unpack("<b", e[5:6])[0]  # signed MSB of H5
            h4 = (e4 << 4) | (e[4] & 0x0F)
            h5 = (e6 << 4) | (e[4] >> 4)
            h6 = struct.unpack("<b", e[6:7])[0]
            self.dig_h = (h1, h2, h3, h4, h5, h6)

    def read_raw(self):
        """Trigger one forced-mode conversion and return (adc_T, adc_P, adc_H or None)."""
        if self.has_humidity:
            self._write(REG_CTRL_HUM, OSRS_X1)
        self._write(REG_CTRL_MEAS, (OSRS_X1 << 5) | (OSRS_X1 << 2) | MODE_FORCED)
        # x1/x1/x1 oversampling takes at most 9.3 ms (datasheet 9.1); poll "measuring" a few times past that.
        for _ in range(10):
            self.sleep_ms(5)
            if not self._read(REG_STATUS, 1)[0] & 0x08:
                break
        d = self._read(REG_DATA, 8)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)  # 20-bit values, msb/lsb/xlsb[7:4]
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7] if self.has_humidity else None
        return adc_t, adc_p, adc_h

    def read(self):
        """Dict of ``temperature`` degC, ``pressure`` hPa and ``humidity`` %RH (None on a BMP280)."""
        adc_t, adc_p, adc_h = self.read_raw()
        t, t_fine = compensate_temperature(adc_t, *self.dig_t)
        out = {
            "temperature": t / 100,
            "pressure": compensate_pressure(adc_p, t_fine, self.dig_p) / 25600,  # Q24.8 Pa -> hPa
            "humidity": None,
        }
        if adc_h is not None:
            out["humidity"] = compensate_humidity(adc_h, t_fine, self.dig_h) / 1024
        return out
