"""A scripted HTTP server at the stream level (``FakeHTTPServer.connect`` stands in for the firmware's
``connect(host, port, tls)``): for unit tests of the config client.  The network as the board sees it (DNS,
sockets, TLS, the broker) is fakeinternet.py + fakeservers.py."""

import io
import json


class FakeStream:
    def __init__(self, response):
        self.sent = b""
        self.incoming = io.BytesIO(response)
        self.closed = False

    def write(self, data):
        self.sent += bytes(data)
        return len(data)

    def readline(self, limit=-1):
        return self.incoming.readline(limit)

    def read(self, n=-1):
        return self.incoming.read(n)

    def close(self):
        self.closed = True


class FakeHTTPServer:
    """Answers each connection with the next queued response (status, headers dict, body bytes); an
    ``OSError`` instance in the queue is raised on connect instead (server down)."""

    def __init__(self):
        self.responses = []
        self.requests = []
        self.streams = []

    def reply(self, status, body=b"", headers=None):
        head = "HTTP/1.0 %d X\r\n" % status
        for k, v in (headers or {}).items():
            head += "%s: %s\r\n" % (k, v)
        if body:
            head += "Content-Length: %d\r\n" % len(body)
        self.responses.append((head + "\r\n").encode() + body)

    def reply_json(self, data, etag):
        self.reply(200, json.dumps(data).encode(), {"ETag": etag, "Content-Type": "application/json"})

    def connect(self, host, port, tls):
        if not self.responses:
            raise OSError(111)  # ECONNREFUSED
        r = self.responses.pop(0)
        if isinstance(r, Exception):
            raise r
        stream = FakeStream(r)
        self.streams.append(stream)
        self.requests.append((host, port, tls, stream))
        return stream

    def last_request(self):
        """(request line, headers dict with lower-case names) of the last request."""
        raw = self.requests[-1][3].sent.decode()
        lines = raw.split("\r\n")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return lines[0], headers
