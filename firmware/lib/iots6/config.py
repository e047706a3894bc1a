"""Layered configuration: library defaults < last good server config (cached on flash) < the per-device file.

* ``DEFAULTS`` below: what every device runs with when nothing else is known.
* ``/config_cache.json``: ``{"etag": ..., "config": {...}}``, the last 200 answer of the config server, so a
  device that boots without network still runs with the fleet's settings.
* ``/device.json``: written when the board is flashed (``iotctl`` renders it): identity and secrets -
  device_id, wifi_ssid, wifi_password, broker_host, broker_port, broker_tls, mqtt_username, mqtt_password,
  config_url, config_token, and optionally topic_base.  Being closest to the device, it wins over the server.
"""

from iots6.compat import join, read_json, write_json

CACHE_FILE = "config_cache.json"
DEVICE_FILE = "device.json"

DEFAULTS = {
    "device_id": None,
    "topic_base": "iots6",
    "wifi_ssid": None,
    "wifi_password": None,
    "broker_host": None,
    "broker_port": 1883,
    "broker_tls": False,
    "mqtt_username": None,
    "mqtt_password": None,
    "mqtt_keepalive_s": 60,
    "config_url": None,
    "config_token": None,
    "config_poll_s": 3600,
    "telemetry_interval_s": 60,
    "motion_cooldown_s": 30,
    "switch_debounce_ms": 50,
    "sensors": {},
    "temperature_unit": "C",
    "oled_enabled": True,
    "oled_brightness": 255,
    "led_enabled": True,
    "ntp_server": "pool.ntp.org",
    "ntp_resync_s": 6 * 3600,
    "labels": {},
    "buffer_capacity": 200,
    "seq_persist_every": 20,
}

# Keys the config server may set, with a check each; anything else in its answer is ignored, and a bad value
# is dropped (the layer below stays in force) rather than applied.
def _int_range(lo, hi):
    def check(v):
        return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi

    return check


def _is_bool(v):
    return isinstance(v, bool)


def _is_dict(v):
    return isinstance(v, dict)


def _is_str(v):
    return isinstance(v, str) and 0 < len(v) <= 253


SERVER_KEYS = {
    "telemetry_interval_s": _int_range(1, 86400),
    "motion_cooldown_s": _int_range(0, 3600),
    "switch_debounce_ms": _int_range(0, 5000),
    "sensors": _is_dict,
    "temperature_unit": lambda v: v in ("C", "F"),
    "oled_enabled": _is_bool,
    "oled_brightness": _int_range(0, 255),
    "led_enabled": _is_bool,
    "ntp_server": _is_str,
    "labels": _is_dict,
    "config_poll_s": _int_range(60, 86400),
}


def clean_server_config(data):
    """The subset of a server answer that is known and valid."""
    out = {}
    if not isinstance(data, dict):
        return out
    for key, check in SERVER_KEYS.items():
        if key in data and check(data[key]):
            out[key] = data[key]
    return out


class Config:
    """The merged view of the three layers. ``cfg["key"]`` reads the winning value."""

    def __init__(self, root="/"):
        self.root = root
        self.device = read_json(join(root, DEVICE_FILE), {}) or {}
        cache = read_json(join(root, CACHE_FILE), {}) or {}
        self.etag = cache.get("etag") if isinstance(cache, dict) else None
        self.server = clean_server_config(cache.get("config") if isinstance(cache, dict) else None)
        self.values = {}
        self._merge()

    def _merge(self):
        values = dict(DEFAULTS)
        values.update(self.server)
        if isinstance(self.device, dict):
            values.update(self.device)
        self.values = values

    def __getitem__(self, key):
        return self.values[key]

    def get(self, key, default=None):
        return self.values.get(key, default)

    def source(self, key):
        """Which layer ``key`` comes from: ``device``, ``server`` or ``default``."""
        if key in self.device:
            return "device"
        if key in self.server:
            return "server"
        return "default"

    def apply_server(self, data, etag=None):
        """Apply a 200 answer of the config server and cache it on flash. Returns the keys whose value changed.

        Raises OSError when the cache cannot be written (the new values are in force anyway).
        """
        before = self.values
        self.server = clean_server_config(data)
        self.etag = etag
        self._merge()
        changed = [k for k in self.values if before.get(k) != self.values.get(k)]
        write_json(join(self.root, CACHE_FILE), {"etag": etag, "config": self.server})
        return changed
