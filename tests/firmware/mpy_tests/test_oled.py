# The status screen drawn into the SSD1306 frame, sent over a fake I2C bus; the frame is written to
# /artifacts/oled.raw (MONO_VLSB, 1024 bytes) for the pytest side to turn into test-artifacts/oled.png.
from fakechips import FakeSSD1306Chip
from iots6.display import SSD1306, StatusScreen, config_error_lines, status_lines
from machine import FakeI2C

from mpytest import run

STATE = {
    "device_id": "pico-oled-01",
    "wifi": True,
    "rssi": -58,
    "mqtt": False,
    "readings": {"temperature": 21.5, "humidity": 40.0, "pressure": 1006.5, "motion": True, "switch": False},
    "queued": 12,
    "error": "mqtt: ECONNRESET",
}


def lit(buf, x, y):
    return bool(buf[(y // 8) * 128 + x] & (1 << (y % 8)))  # MONO_VLSB: byte per 8 rows of one column


def lit_in(buf, x0, y0, x1, y1):
    n = 0
    for y in range(y0, y1):
        for x in range(x0, x1):
            n += lit(buf, x, y)
    return n


def test_lines():
    lines = status_lines(STATE)
    assert lines[0] == "pico-oled-01"
    assert lines[1] == "WiFi ok -58dBm" and lines[2] == "MQTT --"
    assert lines[3] == "T 21.5C H 40%", lines[3]
    assert lines[6] == "queued 12" and lines[7] == "mqtt: ECONNRESET"
    assert status_lines(STATE, "F")[3].startswith("T 70.7F")
    assert all(len(line) <= 16 for line in lines)
    other = dict(STATE, wifi=False, wifi_problem="bad passwd", rssi=None, mqtt=True, clock=False, dropped=3)
    lines = status_lines(other)
    assert lines[1] == "WiFi bad passwd" and lines[2] == "MQTT ok no clock" and lines[6] == "queued 12 lost 3"
    assert status_lines(dict(STATE, clock=True, clock_text="12:34Z"))[2] == "MQTT -- 12:34Z"


def test_config_error_screen():
    lines = config_error_lines("device.json: broker_port has the wrong type")
    assert lines == ["CONFIG ERROR", "device.json:", "broker_port has", "the wrong type", "",
                     "fix: mpremote cp", "device.json :", "(board waits)"], lines
    assert all(len(line) <= 16 for line in lines)


def test_frame_pixels_and_artifact():
    chip = FakeSSD1306Chip()
    i2c = FakeI2C(devices={0x3C: chip})
    driver = SSD1306(i2c)
    assert 0x8D in chip.commands and chip.commands[-1] == 0xAF  # charge pump enabled, display on last
    screen = StatusScreen(driver)
    assert screen.render(STATE)
    assert chip.frame == bytes(driver.buffer) and len(chip.frame) == 1024
    buf = chip.frame
    lines = status_lines(STATE)
    for row, text in enumerate(lines):
        width = len(text) * 8
        assert lit_in(buf, 0, row * 8, width, row * 8 + 8) > len(text.replace(" ", "")) * 3, (row, text)
        assert lit_in(buf, width, row * 8, 128, row * 8 + 8) == 0, (row, text)  # nothing right of the text
    assert not screen.render(STATE)  # unchanged: no second I2C frame write
    with open("/artifacts/oled.raw", "wb") as f:
        f.write(buf)


run(globals())
