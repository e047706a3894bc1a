"""Sensirion SHT31 temperature/humidity over I2C (datasheet "SHT3x-DIS", sections 4.3, 4.12, 4.13)."""

try:
    from iots6.compat import sleep_ms as _sleep_ms
except ImportError:
    from time import sleep_ms as _sleep_ms

ADDRESSES = (0x44, 0x45)  # ADDR pin low -> 0x44, high -> 0x45
# Single shot, high repeatability, clock stretching disabled: the RP2040 I2C block handles stretching, but some
# boards' level shifters do not, so poll instead.  Conversion takes at most 15.5 ms (table 4).
CMD_MEASURE_HIGH = b"\x24\x00"
MEASURE_MS = 16


def crc8(data):
    """CRC-8 of the datasheet (4.12): polynomial 0x31 (x^8+x^5+x^4+1), init 0xFF, no reflection, no final XOR.

    The datasheet's example: crc8(b"\\xbe\\xef") == 0x92.
    """
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ 0x31) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
    return crc


def convert(raw_t, raw_rh):
    """(degC, %RH) from the raw 16-bit words (datasheet 4.13)."""
    return -45 + 175 * raw_t / 65535, 100 * raw_rh / 65535


class SHT31:
    def __init__(self, i2c, address=0x44, sleep_ms=None):
        self.i2c = i2c
        self.address = address
        self.sleep_ms = sleep_ms or _sleep_ms

    def read(self):
        """Dict of ``temperature`` degC and ``humidity`` %RH. OSError on a bus error or a CRC mismatch."""
        self.i2c.writeto(self.address, CMD_MEASURE_HIGH)
        self.sleep_ms(MEASURE_MS)
        d = self.i2c.readfrom(self.address, 6)  # T msb, T lsb, T crc, RH msb, RH lsb, RH crc
        if crc8(d[0:2]) != d[2] or crc8(d[3:5]) != d[5]:
            raise OSError("SHT31 CRC mismatch")
        t, rh = convert((d[0] << 8) | d[1], (d[3] << 8) | d[4])
        return {"temperature": t, "humidity": rh}
