# Sensor drivers against datasheet vectors, through fakes of the I2C chips.
from fakechips import FakeBME280Chip, FakeSHT31Chip
from iots6.drivers import bme280, sht31
from iots6.drivers.internal_temp import InternalTemp, temperature_from_u16
from machine import FakeADC, FakeI2C

from mpytest import close, run


def no_sleep(ms):
    pass


def test_bme280_datasheet_temperature():
    # Bosch datasheet example: dig_T1..3 = 27504, 26435, -1000; adc_T = 519888 -> 25.08 degC, t_fine 128422
    t, t_fine = bme280.compensate_temperature(519888, 27504, 26435, -1000)
    assert t == 2508, t
    assert t_fine == 128422, t_fine


def test_bme280_datasheet_pressure():
    # adc_P = 415148 with the datasheet's dig_P1..9 -> 100653.27 Pa (the integer routine gives 100653.25)
    q24_8 = bme280.compensate_pressure(
        415148, 128422, (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
    )
    assert close(q24_8 / 256, 100653.27, 0.05), q24_8 / 256


def test_bme280_over_i2c():
    chip = FakeBME280Chip()
    i2c = FakeI2C(devices={0x76: chip})
    sensor = bme280.BME280(i2c, 0x76, sleep_ms=no_sleep)
    assert sensor.dig_t == (27504, 26435, -1000)
    assert sensor.dig_h == (75, 362, 0, 324, 50, 30), sensor.dig_h
    r = sensor.read()
    assert close(r["temperature"], 25.08, 0.001), r
    assert close(r["pressure"], 1006.5327, 0.0005), r
    # adc_H=30000 with these dig_H: the datasheet's double-precision routine gives 51.083 %RH
    assert close(r["humidity"], 51.08, 0.01), r
    # forced mode with x1 oversampling was requested: ctrl_hum then ctrl_meas = 001 001 01
    assert (0xF2, b"\x01") in chip.writes and (0xF4, bytes((0x25,))) in chip.writes, chip.writes


def test_bmp280_has_no_humidity():
    i2c = FakeI2C(devices={0x77: FakeBME280Chip(chip_id=0x58)})
    r = bme280.BME280(i2c, 0x77, sleep_ms=no_sleep).read()
    assert r["humidity"] is None and close(r["temperature"], 25.08, 0.001)


def test_bme280_rejects_other_chip():
    try:
        bme280.BME280(FakeI2C(devices={0x76: FakeBME280Chip(chip_id=0x11)}), 0x76)
    except OSError:
        return
    raise AssertionError("a chip id that is not 0x60/0x58 was accepted")


def test_sht31_crc_datasheet_example():
    assert sht31.crc8(b"\xbe\xef") == 0x92
    assert sht31.crc8(b"\x00\x00") == 0x81


def test_sht31_conversion():
    t, rh = sht31.convert(0, 65535)
    assert close(t, -45.0, 1e-9) and close(rh, 100.0, 1e-9)
    t, rh = sht31.convert(0x6666, 0x8000)
    assert close(t, 25.0, 0.01), t
    assert close(rh, 50.0, 0.01), rh


def test_sht31_over_i2c_and_crc_error():
    chip = FakeSHT31Chip()
    i2c = FakeI2C(devices={0x44: chip})
    r = sht31.SHT31(i2c, sleep_ms=no_sleep).read()
    assert chip.commands == [b"\x24\x00"], chip.commands
    assert close(r["temperature"], 25.0, 0.01) and close(r["humidity"], 50.0, 0.01), r
    chip.corrupt = True
    try:
        sht31.SHT31(i2c, sleep_ms=no_sleep).read()
    except OSError:
        return
    raise AssertionError("a corrupted CRC was accepted")


def test_internal_temperature_formula():
    # 0.706 V is 27 degC by definition; raw = 0.706 / 3.3 * 65535
    assert close(temperature_from_u16(int(0.706 / 3.3 * 65535 + 0.5)), 27.0, 0.05)
    # 0.6888 V -> 27 - (0.6888 - 0.706) / 0.001721 = 36.99 degC
    raw = int(0.6888 / 3.3 * 65535 + 0.5)
    assert close(InternalTemp(FakeADC(4, raw)).read()["temperature"], 36.99, 0.05)


def test_sensor_failures_of_any_kind_cost_one_reading():
    import dht
    from iots6.sensors import Sensors
    from machine import FakePin

    sensors = Sensors(None, {"dht22": True}, dht_pin=FakePin(15), dht_module=dht, clock_ms=lambda: 0)
    dht.FakeDHT22.fail = "checksum"  # micropython-lib's dht raises a plain Exception on a bad frame
    try:
        assert sensors.read()["temperature"] is None
        assert sensors.errors["dht22"] == "checksum error"
    finally:
        dht.FakeDHT22.fail = None


def test_dht22_wrapper_rate_limits():
    import dht
    from iots6.drivers.dht22 import DHT22
    from machine import FakePin

    now = [0]
    d = DHT22(FakePin(15), dht, clock_ms=lambda: now[0])
    assert d.read() == {"temperature": 21.5, "humidity": 40.2}
    now[0] = 1000
    d.read()
    assert d.sensor.measures == 1  # within 2 s: the cached value, the sensor is not asked
    now[0] = 2500
    d.read()
    assert d.sensor.measures == 2


def test_sensors_detect_and_overrides():
    import dht
    from iots6.sensors import Sensors
    from machine import FakePin

    i2c = FakeI2C(devices={0x77: FakeBME280Chip(), 0x44: FakeSHT31Chip()})
    auto = Sensors(i2c)
    assert auto.names() == ["bme280", "sht31"]
    r = auto.read()
    # SHT31 is preferred for temperature and humidity, the BME280 gives the pressure
    assert close(r["temperature"], 25.0, 0.01) and close(r["humidity"], 50.0, 0.01)
    assert close(r["pressure"], 1006.53, 0.01)
    only = Sensors(i2c, {"climate": "dht22"}, dht_pin=FakePin(15), dht_module=dht)
    assert only.names() == ["dht22"] and only.read()["temperature"] == 21.5
    nothing = {"temperature": None, "humidity": None, "pressure": None}
    assert Sensors(i2c, {"climate": "none"}).read() == nothing
    # the server's default address is 0x76; a chip at 0x77 is probed too (climate auto)
    found = Sensors(i2c, {"climate": "auto", "bme280_address": 0x76})
    assert found.names() == ["bme280", "sht31"] and found.drivers["bme280"].address == 0x77
    assert Sensors(i2c, {"climate": "bme280", "bme280_address": 0x76}).names() == ["bme280"]
    both = FakeI2C(devices={0x76: FakeBME280Chip(), 0x77: FakeBME280Chip()})
    assert Sensors(both, {"bme280_address": 0x77}).drivers["bme280"].address == 0x77
    assert Sensors(both, {"bme280_address": 0x76}).drivers["bme280"].address == 0x76
    i2c.fail = True
    broken = Sensors(i2c)
    assert broken.names() == [] and "i2c" in broken.errors


run(globals())
