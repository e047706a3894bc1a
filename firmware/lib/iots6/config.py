"""Layered configuration: library defaults < last good server config (cached on flash) < the per-device file.

* ``DEFAULTS`` below: what every device runs with when nothing else is known; the keys the server may set take
  their defaults from :mod:`iots6.configkeys` (the mirror of the server's table).
* ``/config_cache.json``: ``{"etag": ..., "config": {...}}``, the last 200 answer of the config server, so a
  device that boots without network still runs with the fleet's settings.  Only keys the server may send, with
  values in the server's ranges, are taken (``configkeys.clean``).
* ``/device.json``: written when the board is flashed (``iotctl`` renders it): identity and secrets -
  device_id, wifi_ssid, wifi_password, broker_host, broker_port, broker_tls, mqtt_username, mqtt_password,
  config_url, config_token, and optionally topic_base.  Being closest to the device, it wins over the server
  (``sensors`` and ``labels`` are merged entry by entry).

:meth:`Config.problem` says what is wrong with ``device.json`` in one sentence (missing, not JSON, a required
key absent or of the wrong type); the board then shows it and waits instead of starting (``iots6.board``).
"""

from iots6 import configkeys
from iots6.compat import join, read_json, write_json

CACHE_FILE = "config_cache.json"
DEVICE_FILE = "device.json"

DEFAULTS = {
    "device_id": None,
    "topic_base": "iots6",
    "wifi_ssid": None,
    "wifi_password": None,
    "broker_host": None,
    "broker_port": 0,  # 0: 1883, or 8883 with TLS
    "broker_tls": False,
    "mqtt_username": None,
    "mqtt_password": None,
    "mqtt_keepalive_s": 60,
    "config_url": None,
    "config_token": None,
    "ntp_resync_s": 6 * 3600,
    "buffer_capacity": 1000,
    "buffer_max_bytes": 196608,
    "seq_persist_every": 20,
}
DEFAULTS.update(configkeys.defaults())

NESTED = ("sensors", "labels")  # merged entry by entry across the layers

# device.json: key -> (accepted types, required).  A wrong type here would fail later in a confusing way (a port
# that is a string, a Wi-Fi name that is a number), so it stops the boot with a message instead.
_NUMBER = (int, float)
DEVICE_KEYS = {
    "device_id": ((str,), True),
    "wifi_ssid": ((str,), True),
    "wifi_password": ((str, type(None)), False),
    "broker_host": ((str,), True),
    "broker_port": ((int,), False),
    "broker_tls": ((bool,), False),
    "mqtt_username": ((str, type(None)), False),
    "mqtt_password": ((str, type(None)), False),
    "config_url": ((str, type(None)), False),
    "config_token": ((str, type(None)), False),
    "topic_base": ((str,), False),
    "telemetry_interval_s": (_NUMBER, False),
    "mqtt_keepalive_s": ((int,), False),
    "buffer_capacity": ((int,), False),
    "buffer_max_bytes": ((int,), False),
    "seq_persist_every": ((int,), False),
    "sensors": ((dict,), False),
    "labels": ((dict,), False),
}


def clean_server_config(data):
    """The subset of a server answer that is known and valid."""
    return configkeys.clean(data)


def _read_device(path):
    """(data, problem): the parsed device.json, or None and why it cannot be used."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, "device.json is missing"
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return None, "device.json is not valid JSON"
    if not isinstance(data, dict):
        return None, "device.json is not a JSON object"
    return data, None


def device_problem(data):
    """One sentence naming the first thing wrong with a parsed device.json, or None."""
    from iots6.contract import valid_device_id

    for key in DEVICE_KEYS:
        types, required = DEVICE_KEYS[key]
        if key not in data or data[key] is None:
            if required:
                return "device.json has no %s" % key
            continue
        value = data[key]
        if isinstance(value, bool) and bool not in types:
            return "device.json: %s has the wrong type" % key
        if not isinstance(value, types):
            return "device.json: %s has the wrong type" % key
    if not valid_device_id(data["device_id"]):
        return "device.json: device_id must be 1-64 of A-Z a-z 0-9 _ -"
    if not data["wifi_ssid"] or not data["broker_host"]:
        return "device.json: wifi_ssid and broker_host must not be empty"
    port = data.get("broker_port")
    if port is not None and not 0 <= port <= 65535:
        return "device.json: broker_port must be 1-65535"
    interval = data.get("telemetry_interval_s")
    if interval is not None and not interval > 0:
        return "device.json: telemetry_interval_s must be above 0"
    url = data.get("config_url")
    if url and not (url.startswith("http://") or url.startswith("https://")):
        return "device.json: config_url must start with http:// or https://"
    return None


class Config:
    """The merged view of the three layers. ``cfg["key"]`` reads the winning value."""

    def __init__(self, root="/"):
        self.root = root
        data, self.device_error = _read_device(join(root, DEVICE_FILE))
        self.device = data if data is not None else {}
        if self.device_error is None:
            self.device_error = device_problem(self.device)
        cache = read_json(join(root, CACHE_FILE), {}) or {}
        self.etag = cache.get("etag") if isinstance(cache, dict) else None
        self.server = clean_server_config(cache.get("config") if isinstance(cache, dict) else None)
        self.values = {}
        self._merge()

    def problem(self):
        """Why the device cannot start with this configuration (one sentence), or None."""
        return self.device_error

    def needs_tls(self):
        url = self.values.get("config_url") or ""
        return bool(self.values.get("broker_tls")) or url.startswith("https://")

    def _merge(self):
        values = dict(DEFAULTS)
        for layer in (self.server, self.device if isinstance(self.device, dict) else {}):
            for key in layer:
                value = layer[key]
                if key in NESTED and isinstance(value, dict) and isinstance(values.get(key), dict):
                    merged = dict(values[key])
                    merged.update(value)
                    value = merged
                values[key] = value
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
