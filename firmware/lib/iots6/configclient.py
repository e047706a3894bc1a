"""Fetch the device's config from the config server: ``GET /v1/devices/<id>/config``.

Sends ``Authorization: Bearer <config_token>`` and ``If-None-Match: <etag of the cached config>``.  A 200 is
applied and cached on flash, a 304 keeps what is there, anything else is recorded as the last error.  Nothing
here raises: a failed fetch never stops telemetry.

``connect(host, port, tls)`` returns a connected stream (``write``, ``readline``, ``read``, ``close``): on the
device and in the simulator an :class:`iots6.net.Link` (bounded connect, TLS verified against the flashed CA,
every read bounded).  The whole exchange also has a deadline (``DEADLINE_MS``) checked between reads,
with the watchdog fed between them, so a server that drips one byte per second cannot hold the loop.

The answer's ``Date`` header is kept (``server_time_ms``): when NTP cannot be reached (UDP 123 blocked, the
internet down) the device sets its clock from the config server instead, to the second.
"""

import json

MAX_BODY = 8192  # the config is a few hundred bytes; refuse anything that could exhaust the heap
MAX_HEADERS = 32
DEADLINE_MS = 6000
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


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


def parse_http_date(value):
    """Milliseconds since the port's epoch of an IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``), or None."""
    import time

    try:
        parts = value.split()
        hms = parts[4].split(":")
        if len(parts) != 6 or parts[5] != "GMT" or len(hms) != 3:
            return None
        t = (int(parts[3]), MONTHS.index(parts[2]) + 1, int(parts[1]), int(hms[0]), int(hms[1]), int(hms[2]), 0, 0)
        return int(time.mktime(t)) * 1000
    except (ValueError, IndexError, OverflowError):
        return None


class ConfigClient:
    def __init__(self, config, device_id, connect, clock=None, feed=None):
        self.config = config
        self.device_id = device_id
        self.connect = connect
        self.clock = clock
        self.feed = feed
        self.last_status = None
        self.last_error = None
        self.changed = []
        self.server_time_ms = None
        self.deadline = None

    def fetch(self):
        """One fetch. Returns ``"updated"``, ``"not_modified"`` or ``"error"`` (see ``last_error``)."""
        self.changed = []
        self.server_time_ms = None
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
            if self.clock is not None:
                self.deadline = self.clock.ticks_add(self.clock.ticks_ms(), DEADLINE_MS)
            sock = self.connect(host, port, tls)
            self._tick()
            sock.write(request.encode())
            status, headers, body = self._read_response(sock)
        except Exception as exc:  # noqa: BLE001 - refused, timeout, TLS not trusted, garbage: all just errors
            return self._error("config: %s" % (_why(exc),))
        finally:
            if sock is not None:
                try:
                    sock.close()
                except Exception:  # noqa: BLE001
                    pass
        self.last_status = status
        if "date" in headers:
            self.server_time_ms = parse_http_date(headers["date"])
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
            return self._error("config cache: %s" % (_why(exc),))
        self.last_error = None
        return "updated"

    def _error(self, message):
        self.last_error = message
        return "error"

    def _tick(self):
        """Between two reads: feed the watchdog, and give up once the exchange's deadline has passed."""
        if self.feed is not None:
            self.feed()
        clock = self.clock
        if clock is not None and self.deadline is not None and clock.ticks_diff(self.deadline, clock.ticks_ms()) <= 0:
            raise OSError(110, "config server too slow")

    def _readline(self, sock):
        line = sock.readline(512)
        self._tick()
        return line

    def _read_response(self, sock):
        line = self._readline(sock)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError("not an HTTP response")
        status = int(parts[1])
        headers = {}
        for _ in range(MAX_HEADERS):
            line = self._readline(sock)
            if not line or line == b"\r\n" or line == b"\n":
                break
            if b":" in line:
                name, value = line.split(b":", 1)
                headers[name.strip().lower().decode()] = value.strip().decode()
        else:
            raise ValueError("too many headers")
        length = headers.get("content-length")
        if length is not None:
            n = int(length)
            if n > MAX_BODY:
                raise ValueError("config body too large")
            body = b""
            while len(body) < n:
                chunk = sock.read(n - len(body))
                self._tick()
                if not chunk:
                    break
                body += chunk
        else:
            body = b""
            while len(body) <= MAX_BODY:
                chunk = sock.read(1024)
                self._tick()
                if not chunk:
                    break
                body += chunk
            if len(body) > MAX_BODY:
                raise ValueError("config body too large")
        return status, headers, body


def _why(exc):
    from iots6.compat import describe

    return describe(exc)
