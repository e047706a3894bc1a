"""The servers a device talks to, speaking their real wire protocols over FakeInternet (fakeinternet.py):

* ``FakeDNSServer`` - DNS over UDP 53 (A records), as the LAN router's resolver: it answers LAN names itself and
  forwards the rest, so with the internet down those get no answer at all;
* ``FakeNTPServer`` - SNTP over UDP 123, from the world's true time;
* ``FakeMQTTBroker`` - an MQTT 3.1.1 broker (CONNECT/CONNACK, PUBLISH QoS 0/1 + PUBACK, SUBSCRIBE/SUBACK,
  PINGREQ/PINGRESP, retained messages, last wills), with the faults a broker shows: refused logins, a stalled
  CONNACK, a silent (half-open) connection, latency, malformed packets;
* ``FakeConfigServer`` - the config server's ``GET /v1/devices/<id>/config`` over HTTP/1.0 (ETag/304, Date), with
  stalls and errors.

They are fakes of services the WebAssembly interpreter cannot reach; tests/integration runs the firmware's
logic against the real Mosquitto and config server under CPython (iotctl device simulate).
"""

import json
import time


def _ntp_delta():
    return 3155673600 if time.gmtime(0)[0] == 2000 else 2208988800


class FakeDNSServer:
    def __init__(self, net, ip="192.168.1.1"):
        self.net = net
        self.names = {}  # name -> address
        self.lan_names = set()  # names the router answers itself (no internet needed)
        self.mode = "up"  # "up", "down" (no reply), "servfail"
        self.ttl = 300
        self.queries = 0
        host = net.hosts.get(ip) or net.add_host(ip, "router")
        host.udp[53] = self

    def add(self, name, address, lan=True):
        self.names[name] = address
        if lan:
            self.lan_names.add(name)

    def lookup(self, name):
        """The address, "nxdomain", or None when no answer comes (down, or an outside name with no internet)."""
        self.queries += 1
        if self.mode != "up":
            return None
        if name not in self.lan_names and not self.net.internet_up:
            return None
        return self.names.get(name, "nxdomain")

    def datagram(self, data):
        if len(data) < 17:
            return None
        i = 12
        labels = []
        while i < len(data) and data[i]:
            n = data[i]
            labels.append(bytes(data[i + 1 : i + 1 + n]).decode())
            i += n + 1
        question = bytes(data[12 : i + 5])
        name = ".".join(labels)
        if self.mode == "servfail":
            self.queries += 1
            return bytes(data[0:2]) + b"\x81\x82\x00\x01\x00\x00\x00\x00\x00\x00" + question
        answer = self.lookup(name)
        if answer is None:
            return None
        if answer == "nxdomain":
            return bytes(data[0:2]) + b"\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00" + question
        ip = bytes(int(p) for p in answer.split("."))
        ttl = self.ttl
        record = b"\xc0\x0c\x00\x01\x00\x01" + bytes((ttl >> 24 & 255, ttl >> 16 & 255, ttl >> 8 & 255, ttl & 255))
        return bytes(data[0:2]) + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + question + record + b"\x00\x04" + ip


class FakeNTPServer:
    def __init__(self, net, ip, name=None):
        self.net = net
        self.mode = "up"  # "up", "down" (no reply), "short" (40 bytes), "kod" (stratum 0), "stale" (wrong origin)
        self.queries = 0
        host = net.hosts.get(ip) or net.add_host(ip, name)
        host.udp[123] = self

    def datagram(self, data):
        self.queries += 1
        if self.mode == "down" or len(data) < 48:
            return None
        ms = self.net.true_ms()
        secs = ms // 1000 + _ntp_delta()
        frac = (ms % 1000) * 0x100000000 // 1000
        reply = bytearray(48)
        reply[0] = 0x24  # LI 0, version 4, mode 4 (server)
        reply[1] = 0 if self.mode == "kod" else 2
        reply[24:32] = b"\x00" * 8 if self.mode == "stale" else data[40:48]  # origin = the client's transmit
        for k in range(4):
            reply[40 + k] = (secs >> (24 - 8 * k)) & 255
            reply[44 + k] = (frac >> (24 - 8 * k)) & 255
        if self.mode == "short":
            return bytes(reply[:40])
        return bytes(reply)


def _encode_length(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _mqtt_str(s):
    if isinstance(s, str):
        s = s.encode()
    return bytes((len(s) >> 8, len(s) & 255)) + s


class FakeMQTTBroker:
    """A broker on ``ip:port``. Faults: ``refuse_code`` (CONNACK return code), ``stall_connack`` (accepts TCP,
    never answers CONNECT), ``drop_pubacks`` (takes publishes, never acknowledges), ``half_open()`` (every
    connection goes silent, as when the broker's host loses power), ``kill()`` (every connection reset, wills
    sent), ``garbage`` (answers PINGREQ with a malformed PINGRESP), ``latency_ms``.  ``keep`` False keeps only
    counts (the soak test must not grow the heap with 24 h of messages)."""

    def __init__(self, net, ip, port=1883, name=None, username=None, password=None, keep=True):
        self.net = net
        self.port = port
        self.username = username
        self.password = password
        self.keep = keep
        self.messages = []  # (topic, payload bytes, retain, qos): only what was acknowledged (or QoS 0)
        self.retained = {}
        self.counts = {}  # topic suffix -> acknowledged publishes
        self.on_publish = None  # (topic, payload) -> None, for every publish accepted
        self.sessions = []
        self.connects = 0
        self.refuse_code = 0
        self.stall_connack = False
        self.drop_pubacks = False
        self.garbage = False
        self.latency_ms = 0  # added to every packet the broker sends (a slow or far broker)
        self.cert = None  # a FakeCert: the port speaks TLS
        self.host = net.hosts.get(ip) or net.add_host(ip, name)
        self.host.tcp[port] = self

    # -- the service interface
    def accept(self, conn):
        session = MQTTSession(self, conn)
        self.sessions.append(session)
        return session

    # -- faults and views
    def live(self):
        return [s for s in self.sessions if s.conn.open and not s.conn.silent and s.client_id]

    def half_open(self):
        for s in self.sessions:
            if s.conn.open:
                s.conn.silent = True
                s.lost()
        self.sessions = []

    def kill(self):
        for s in self.sessions:
            if s.conn.open:
                s.conn.reset()
                s.lost()
        self.sessions = []

    def deliver(self, topic, payload, retain, qos):
        if retain:
            if payload:
                self.retained[topic] = payload
            else:
                self.retained.pop(topic, None)
        suffix = topic[topic.rfind("/") + 1 :]
        self.counts[suffix] = self.counts.get(suffix, 0) + 1
        if self.keep:
            self.messages.append((topic, payload, retain, qos))
        if self.on_publish is not None:
            self.on_publish(topic, payload)
        for s in self.live():
            if topic in s.subscriptions:
                s.send_publish(topic, payload)

    def publish(self, topic, payload, retain=True):
        """A message from another client (the config server's notice)."""
        self.deliver(topic, payload if isinstance(payload, bytes) else payload.encode(), retain, 1)

    def payloads(self, suffix):
        return [json.loads(m) for (t, m, r, q) in self.messages if t.endswith(suffix)]


class MQTTSession:
    def __init__(self, broker, conn):
        self.broker = broker
        self.conn = conn
        self.buf = b""
        self.client_id = None
        self.will = None
        self.subscriptions = set()
        self.pid = 0
        self.done = False

    def lost(self):
        """The connection ended without DISCONNECT: the broker publishes the will."""
        if self.done:
            return
        self.done = True
        if self.will is not None and self.client_id:
            self.broker.deliver(*self.will)

    def closed_by_client(self):
        self.lost()
        if self in self.broker.sessions:
            self.broker.sessions.remove(self)

    def send(self, data):
        self.conn.send(data, delay_ms=self.broker.latency_ms)

    def send_publish(self, topic, payload):
        self.pid = self.pid % 65535 + 1
        body = _mqtt_str(topic) + bytes((self.pid >> 8, self.pid & 255)) + payload
        self.send(bytes((0x32,)) + _encode_length(len(body)) + body)

    def received(self, data):
        self.buf += data
        while len(self.buf) >= 2:
            n = 0
            shift = 0
            i = 1
            while True:
                if i >= len(self.buf):
                    return
                b = self.buf[i]
                n |= (b & 0x7F) << shift
                i += 1
                if not b & 0x80:
                    break
                shift += 7
            if len(self.buf) < i + n:
                return
            first, body = self.buf[0], self.buf[i : i + n]
            self.buf = self.buf[i + n :]
            self.packet(first, body)
            if self.done:
                return

    def packet(self, first, body):
        broker = self.broker
        kind = first & 0xF0
        if kind == 0x10:
            self.connect(body)
        elif kind == 0x30:
            qos = (first >> 1) & 3
            tlen = body[0] << 8 | body[1]
            topic = bytes(body[2 : 2 + tlen]).decode()
            i = 2 + tlen
            pid = None
            if qos:
                pid = body[i] << 8 | body[i + 1]
                i += 2
            payload = bytes(body[i:])
            if qos == 1 and broker.drop_pubacks:
                return
            broker.deliver(topic, payload, bool(first & 1), qos)
            if qos == 1:
                self.send(bytes((0x40, 2, pid >> 8, pid & 255)))
        elif kind == 0x80:
            pid = body[0] << 8 | body[1]
            i = 2
            granted = []
            topics = []
            while i < len(body):
                tlen = body[i] << 8 | body[i + 1]
                topics.append(bytes(body[i + 2 : i + 2 + tlen]).decode())
                granted.append(min(body[i + 2 + tlen], 1))
                i += 3 + tlen
            self.send(bytes((0x90, 2 + len(granted), pid >> 8, pid & 255)) + bytes(granted))
            for t in topics:
                self.subscriptions.add(t)
                if t in broker.retained:
                    self.send_publish(t, broker.retained[t])
        elif kind == 0x40:
            pass  # the device acknowledged our QoS 1 delivery
        elif kind == 0xC0:
            if broker.garbage:
                self.send(b"\xd0\x01\x00")  # a PINGRESP with a body: umqtt.simple's `assert sz == 0` fails
            else:
                self.send(b"\xd0\x00")
        elif kind == 0xE0:
            self.done = True  # clean DISCONNECT: no will
            self.conn.fin()
        else:
            self.conn.reset()
            self.lost()

    def connect(self, body):
        broker = self.broker
        broker.connects += 1
        flags = body[7]
        i = 10
        cid_len = body[i] << 8 | body[i + 1]
        client_id = bytes(body[i + 2 : i + 2 + cid_len]).decode()
        i += 2 + cid_len
        will = None
        if flags & 0x04:
            tlen = body[i] << 8 | body[i + 1]
            topic = bytes(body[i + 2 : i + 2 + tlen]).decode()
            i += 2 + tlen
            mlen = body[i] << 8 | body[i + 1]
            msg = bytes(body[i + 2 : i + 2 + mlen])
            i += 2 + mlen
            will = (topic, msg, bool(flags & 0x20), (flags >> 3) & 3)
        user = password = None
        if flags & 0x80:
            ulen = body[i] << 8 | body[i + 1]
            user = bytes(body[i + 2 : i + 2 + ulen]).decode()
            i += 2 + ulen
        if flags & 0x40:
            plen = body[i] << 8 | body[i + 1]
            password = bytes(body[i + 2 : i + 2 + plen]).decode()
        if broker.stall_connack:
            return
        code = broker.refuse_code
        if not code and broker.username is not None and (user, password) != (broker.username, broker.password):
            code = 4
        self.send(bytes((0x20, 2, 0, code)))
        if code:
            self.done = True
            self.conn.fin()
            return
        for other in broker.live():  # a second connection with the same client id takes over
            if other.client_id == client_id and other is not self:
                other.conn.reset()
                other.lost()
        self.client_id = client_id
        self.will = will


class FakeConfigServer:
    """``GET /v1/devices/<id>/config`` with a Bearer token; answers ``config`` (JSON) with ``etag``, 304 for a
    matching If-None-Match, a Date header.  Faults: ``mode`` "stall" (accepts, never answers), "drip" (one byte
    every 900 ms), "500".  ``script``: explicit answers (status, headers dict, body bytes) used first."""

    def __init__(self, net, ip, port=8080, name=None, token="tok"):
        self.net = net
        self.token = token
        self.config = {}
        self.etag = '"c0"'
        self.mode = "up"
        self.script = []
        self.requests = []
        self.keep_requests = True
        self.date = True  # send a Date header (the device sets its clock from it when NTP fails)
        self.cert = None
        self.host = net.hosts.get(ip) or net.add_host(ip, name)
        self.host.tcp[port] = self

    def set_config(self, config, etag):
        self.config = config
        self.etag = etag

    def accept(self, conn):
        return HTTPSession(self, conn)


class HTTPSession:
    def __init__(self, server, conn):
        self.server = server
        self.conn = conn
        self.buf = b""

    def received(self, data):
        self.buf += data
        if b"\r\n\r\n" not in self.buf:
            return
        head = self.buf.split(b"\r\n\r\n", 1)[0].decode()
        lines = head.split("\r\n")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        server = self.server
        if server.keep_requests:
            server.requests.append((lines[0], headers))
        if server.mode == "stall":
            return
        if server.script:
            status, extra, body = server.script.pop(0)
        elif headers.get("authorization") != "Bearer " + server.token:
            status, extra, body = 401, {}, b'{"error": "unauthorized"}'
        elif server.mode == "500":
            status, extra, body = 500, {}, b"boom"
        elif headers.get("if-none-match") == server.etag:
            status, extra, body = 304, {"ETag": server.etag}, b""
        else:
            status, extra, body = 200, {"ETag": server.etag, "Content-Type": "application/json"}, json.dumps(
                server.config
            ).encode()
        t = time.gmtime(server.net.true_ms() // 1000)
        days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
        months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
        date = "%s, %02d %s %04d %02d:%02d:%02d GMT" % (days[t[6]], t[2], months[t[1] - 1], t[0], t[3], t[4], t[5])
        out = "HTTP/1.0 %d X\r\n" % status + ("Date: %s\r\n" % date if server.date else "")
        for k in extra:
            out += "%s: %s\r\n" % (k, extra[k])
        if body:
            out += "Content-Length: %d\r\n" % len(body)
        data = (out + "\r\n").encode() + body
        if server.mode == "drip":
            for k in range(len(data)):
                self.conn.send(data[k : k + 1], delay_ms=900 * (k + 1))
            self.conn.fin(delay_ms=900 * (len(data) + 1))
            return
        self.conn.send(data)
        self.conn.fin()
