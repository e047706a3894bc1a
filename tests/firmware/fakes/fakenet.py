"""Fakes of the network the firmware talks to, which the WebAssembly interpreter cannot reach: a TCP stream
for HTTP (``FakeHTTPServer.connect`` stands in for socket.getaddrinfo + connect) and an MQTT broker with the
``umqtt.simple.MQTTClient`` interface."""

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

    def readline(self):
        return self.incoming.readline()

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


class FakeBroker:
    """A Mosquitto stand-in: ``up`` toggles reachability; keeps retained messages, wills, QoS 1 publishes."""

    def __init__(self):
        self.up = True
        self.published = []  # (topic, payload bytes, retain, qos), acknowledged only
        self.retained = {}
        self.subscriptions = []
        self.clients = []

    def client(self, cfg=None, client_id="x"):
        c = FakeMQTTClient(self, client_id)
        self.clients.append(c)
        return c

    def go_down(self):
        """Broker restart: every connection breaks, wills of live clients are published."""
        self.up = False
        for c in self.clients:
            if c.alive:
                c.alive = False
                if c.will:
                    self._deliver(*c.will)

    def _deliver(self, topic, msg, retain, qos):
        self.published.append((topic, msg, retain, qos))
        if retain:
            self.retained[topic] = msg

    def payloads(self, topic_suffix):
        return [json.loads(m) for (t, m, r, q) in self.published if t.endswith(topic_suffix)]


class FakeMQTTClient:
    """Same methods and signatures as micropython-lib's ``umqtt.simple.MQTTClient``."""

    def __init__(self, broker, client_id):
        self.broker = broker
        self.client_id = client_id
        self.will = None
        self.cb = None
        self.alive = False
        self.inbox = []
        self.sock = self

    def close(self):  # the socket's close (MQTTClient.sock.close())
        if self.alive:
            self.alive = False
            if self.will:
                self.broker._deliver(*self.will)

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self.will = (topic, msg, retain, qos)

    def set_callback(self, f):
        self.cb = f

    def connect(self, clean_session=True, timeout=None):
        if not self.broker.up:
            raise OSError(113)  # EHOSTUNREACH
        self.alive = True
        return 0

    def _check(self):
        if not self.alive or not self.broker.up:
            self.alive = False
            raise OSError(104)  # ECONNRESET

    def publish(self, topic, msg, retain=False, qos=0):
        self._check()
        self.broker._deliver(topic, bytes(msg), retain, qos)

    def subscribe(self, topic, qos=0):
        self._check()
        self.broker.subscriptions.append((self.client_id, topic, qos))
        if topic in self.broker.retained:
            self.inbox.append((topic.encode(), self.broker.retained[topic]))

    def check_msg(self):
        self._check()
        while self.inbox:
            t, m = self.inbox.pop(0)
            self.cb(t, m)

    def ping(self):
        self._check()

    def disconnect(self):
        self.alive = False
