"""The RP2040's on-die temperature sensor on ADC channel 4 (RP2040 datasheet 4.9.5).

It measures the chip, which runs warmer than the air, so it is used only when the config asks for it.
"""

ADC_CHANNEL = 4
VREF = 3.3  # the Pico's ADC reference is the 3.3 V rail
V27 = 0.706  # sensor voltage at 27 degC
SLOPE = 0.001721  # volts per degC (the sensor falls as temperature rises)


def temperature_from_u16(raw):
    """degC from a ``read_u16()`` value (0..65535 scaled from the 12-bit conversion)."""
    volts = raw * VREF / 65535
    return 27 - (volts - V27) / SLOPE


class InternalTemp:
    def __init__(self, adc):
        self.adc = adc  # machine.ADC(4)

    def read(self):
        return {"temperature": temperature_from_u16(self.adc.read_u16())}
