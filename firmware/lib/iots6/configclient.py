"""Fetch the device's config from the config server: ``GET /v1/devices/<id>/config``.

Sends ``Authorization: Bearer <config_token>`` and ``If-None-Match: <etag of the cached config>``.  A 200 is
applied and cached on flash, a 304 keeps what is there, anything else is recorded as the last error.  Nothing
here raises: a failed fetch never stops telemetry.

``connect(host, port, tls)`` returns a connected stream (``write``, ``readline``, ``read``, ``close``): on the
device a socket from ``app.build_hardware()``, in tests a fake socket.
"""

import json

MAX_BODY = 8192  # the config is a few hundred bytes; refuse anything that could exhaust the heap


def parse_url(url):
    """``(tls, host, port, path)`` of an http:// or https:// URL."""
    if url.startswith("https://"):
        tls, rest, port = True, url[8:], 443
    elif url.startswith("http://"):
        tls, rest, port = False, url[7:], 80
    else:
        raise ValueError("config_url must start with http:// or https://")
    slash = rest.find("/")
    if slash < 0:
        hostport, path = rest, "/"
    else:
        hostport, path = rest[:slash], rest[slash:]
    if ":" in hostport:
        host, p = hostport.split(":", 1)
        port = int(p)
    else:
        host = hostport
    return tls, host, port, path


def config_path(base_path, device_id):
    """The endpoint path: ``config_url`` may be the server root or the full endpoint."""
    if base_path.endswith("/config"):
        return base_path
    return base_path.rstrip("/") + "/v1/devices/" + device_id + "/config"


class ConfigClient:
    def __init__(self, config, device_id, connect):
        self.config = config
        self.device_id = device_id
        self.connect = connect
        self.last_status = None
        self.last_error = None
        self.changed = []

    def fetch(self):
        """One fetch. Returns ``"updated"``, ``"not_modified"`` or ``"error"`` (see ``last_error``)."""
        self.changed = []
        url = self.config.get("config_url")
        if not url:
            return self._error("no config_url")
        sock = None
        try:
            tls, host, port, path = parse_url(url)
            path = config_path(path, self.device_id)
            request = "GET %s HTTP/1.0\r\nHost: %s\r\nAccept: application/json\r\n" % (path, host)
            token = self.config.get("config_token")
            if token:
                request += "Authorization: Bearer %s\r\n" % token
            if self.config.etag:
                request += "If-None-Match: %s\r\n" % self.config.etag
            request += "Connection: close\r\n\r\n"
            sock = self.connect(host, port, tls)
            sock.write(request.encode())
            status, headers, body = self._read_response(sock)
        except (OSError, ValueError, IndexError) as exc:
            return self._error("config: %s" % (exc,))
        finally:
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        self.last_status = status
        if status == 304:
            self.last_error = None
            return "not_modified"
        if status != 200:
            return self._error("config: HTTP %d" % status)
        try:
            data = json.loads(body)
        except ValueError:
            return self._error("config: body is not JSON")
        if not isinstance(data, dict):
            return self._error("config: body is not an object")
        try:
            self.changed = self.config.apply_server(data, headers.get("etag"))
        except OSError as exc:  # the values are in force; only the flash cache failed
            return self._error("config cache: %s" % (exc,))
        self.last_error = None
        return "updated"

    def _error(self, message):
        self.last_error = message
        return "error"

    def _read_response(self, sock):
        line = sock.readline()
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError("not an HTTP response")
        status = int(parts[1])
        headers = {}
        while True:
            line = sock.readline()
            if not line or line == b"\r\n" or line == b"\n":
                break
            if b":" in line:
                name, value = line.split(b":", 1)
                headers[name.strip().lower().decode()] = value.strip().decode()
        length = headers.get("content-length")
        if length is not None:
            n = int(length)
            if n > MAX_BODY:
                raise ValueError("config body too large")
            body = b""
            while len(body) < n:
                chunk = sock.read(n - len(body))
                if not chunk:
                    break
                body += chunk
        else:
            body = sock.read(MAX_BODY)
        return status, headers, body
