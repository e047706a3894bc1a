# Config layering (defaults < cached server config < device.json) and the HTTP fetch with ETag / 304,
# against a fake of the config server's TCP connection.
import json

from fakenet import FakeHTTPServer
from iots6.config import DEFAULTS, Config
from iots6.configclient import ConfigClient, parse_url

from mpytest import fresh_root, run


def write(path, data):
    with open(path, "w") as f:
        f.write(json.dumps(data))


def device_root(extra=None):
    root = fresh_root("cfg")
    data = {
        "device_id": "pico-07",
        "wifi_ssid": "lab",
        "config_url": "http://cfg.local:8080",
        "config_token": "s3cret",
        "telemetry_interval_s": 15,
    }
    data.update(extra or {})
    write(root + "/device.json", data)
    return root


def test_layers():
    root = device_root()
    write(
        root + "/config_cache.json",
        {
            "etag": '"v1"',
            "config": {
                "telemetry_interval_s": 30,
                "motion_cooldown_s": 5,
                "bogus": 1,
                "oled_brightness": 999,
            },
        },
    )
    cfg = Config(root)
    assert cfg["telemetry_interval_s"] == 15 and cfg.source("telemetry_interval_s") == "device"
    assert cfg["motion_cooldown_s"] == 5 and cfg.source("motion_cooldown_s") == "server"
    assert cfg["switch_debounce_ms"] == DEFAULTS["switch_debounce_ms"]
    assert cfg.source("switch_debounce_ms") == "default"
    assert cfg["oled_brightness"] == 255  # 999 is out of range: the cached value is ignored
    assert cfg.get("bogus") is None
    assert cfg.etag == '"v1"'


def test_missing_and_corrupt_files_fall_back():
    root = fresh_root("cfg")
    with open(root + "/config_cache.json", "w") as f:
        f.write("{not json")
    cfg = Config(root)
    assert cfg["telemetry_interval_s"] == DEFAULTS["telemetry_interval_s"]
    assert cfg.etag is None


def test_parse_url():
    assert parse_url("http://cfg.local:8080") == (False, "cfg.local", 8080, "/")
    assert parse_url("https://h/v1/devices/x/config") == (True, "h", 443, "/v1/devices/x/config")


def test_fetch_200_then_304():
    root = device_root()
    cfg = Config(root)
    server = FakeHTTPServer()
    client = ConfigClient(cfg, "pico-07", server.connect)
    server.reply_json(
        {
            "telemetry_interval_s": 120,
            "motion_cooldown_s": 9,
            "temperature_unit": "F",
            "labels": {"room": "lab"},
        },
        '"abc"',
    )
    assert client.fetch() == "updated", client.last_error
    line, headers = server.last_request()
    assert line == "GET /v1/devices/pico-07/config HTTP/1.0", line
    assert headers["authorization"] == "Bearer s3cret"
    assert "if-none-match" not in headers
    assert headers["host"] == "cfg.local"
    assert server.requests[-1][1] == 8080
    assert cfg["motion_cooldown_s"] == 9 and cfg["temperature_unit"] == "F"
    assert cfg["telemetry_interval_s"] == 15  # device.json still wins
    assert "motion_cooldown_s" in client.changed
    cached = json.loads(open(root + "/config_cache.json").read())
    assert cached["etag"] == '"abc"' and cached["config"]["labels"] == {"room": "lab"}

    server.reply(304, headers={"ETag": '"abc"'})
    assert client.fetch() == "not_modified"
    _, headers = server.last_request()
    assert headers["if-none-match"] == '"abc"'
    assert cfg["motion_cooldown_s"] == 9

    # after a reboot the cached layer and its ETag are back
    again = Config(root)
    assert again["motion_cooldown_s"] == 9 and again.etag == '"abc"'


def test_fetch_errors_never_raise():
    cfg = Config(device_root())
    server = FakeHTTPServer()
    client = ConfigClient(cfg, "pico-07", server.connect)
    assert client.fetch() == "error"  # connection refused
    server.reply(500, b"boom")
    assert client.fetch() == "error" and "500" in client.last_error
    server.reply(200, b"[1, 2]")
    assert client.fetch() == "error"
    server.reply(200, b"{broken")
    assert client.fetch() == "error"
    server.responses.append(b"garbage\r\n\r\n")
    assert client.fetch() == "error"
    assert cfg["motion_cooldown_s"] == DEFAULTS["motion_cooldown_s"]
    assert all(s.closed for s in server.streams)


def test_server_ranges_are_the_servers():
    root = device_root()
    cfg = Config(root)
    kept = cfg.apply_server(
        {"telemetry_interval_s": 4, "config_poll_s": 600, "switch_debounce_ms": 0, "motion_cooldown_s": 3600,
         "sensors": {"climate": "sht31", "bme280_address": 119}, "device_id": "pico-07", "version": 3},
        '"x"',
    )
    assert cfg.server == {"config_poll_s": 600, "motion_cooldown_s": 3600,
                          "sensors": {"climate": "sht31", "bme280_address": 119}}, cfg.server
    assert "config_poll_s" in kept and cfg["config_poll_s"] == 600
    assert cfg["switch_debounce_ms"] == DEFAULTS["switch_debounce_ms"]  # 0 is below the server's 5


def test_sensors_merge_entry_by_entry():
    root = device_root({"sensors": {"dht22": True}})
    cached = {"sensors": {"climate": "auto", "bme280_address": 119}}
    write(root + "/config_cache.json", {"etag": '"e"', "config": cached})
    cfg = Config(root)
    assert cfg["sensors"] == {"climate": "auto", "bme280_address": 119, "dht22": True}, cfg["sensors"]


def test_device_file_problems_are_one_sentence_each():
    root = fresh_root("cfg")
    assert Config(root).problem() == "device.json is missing"
    with open(root + "/device.json", "w") as f:
        f.write("{not json")
    assert Config(root).problem() == "device.json is not valid JSON"
    write(root + "/device.json", [1, 2])
    assert Config(root).problem() == "device.json is not a JSON object"
    good = {"device_id": "pico-07", "wifi_ssid": "lab", "wifi_password": "pw", "broker_host": "mq.lan"}
    write(root + "/device.json", good)
    assert Config(root).problem() is None
    for key, value, expected in (
        ("wifi_ssid", None, "device.json has no wifi_ssid"),
        ("broker_port", "1883", "device.json: broker_port has the wrong type"),
        ("broker_tls", 1, "device.json: broker_tls has the wrong type"),
        ("device_id", "a/b", "device.json: device_id must be 1-64 of A-Z a-z 0-9 _ -"),
        ("config_url", "ftp://x", "device.json: config_url must start with http:// or https://"),
        ("telemetry_interval_s", 0, "device.json: telemetry_interval_s must be above 0"),
    ):
        bad = dict(good)
        bad[key] = value
        write(root + "/device.json", bad)
        assert Config(root).problem() == expected, (key, Config(root).problem())


run(globals())
