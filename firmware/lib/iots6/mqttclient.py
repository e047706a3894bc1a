"""The device's MQTT 3.1.1 client: the calls of micropython-lib's ``umqtt.simple.MQTTClient``, every one bounded.

Why our own instead of umqtt.simple (docs/firmware.md has the whole argument): on a Pico W, umqtt.simple

* resolves the broker with ``getaddrinfo`` (lwIP, no timeout: ~7 s per DNS server),
* clears the socket timeout in ``wait_msg`` (``setblocking(True)``), so a QoS 1 publish on a half-open
  connection waits for its PUBACK until the watchdog resets the board,
* raises ``AssertionError`` on unexpected packets, and allocates whatever length a peer announces.

Here the connection is a :class:`iots6.net.Link` (resolved through the bounded, cached resolver; connect, TLS and
every read bounded), a QoS 1 publish waits for its PUBACK at most ``ack_timeout_ms`` and then raises
OSError(ETIMEDOUT), unanswered PINGREQs are counted (``pings_pending``) so the caller can tell a half-open link,
and a protocol violation raises :class:`MQTTException`.  Only what the firmware needs: QoS 0/1, retained
publishes, a last will, one subscription; clean sessions.
"""

from iots6.compat import ETIMEDOUT

MAX_PACKET_IN = 4096  # a config notice is ~60 bytes; a bigger packet is a broken or hostile peer
ACK_TIMEOUT_MS = 3000

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
PINGREQ = b"\xc0\x00"
PINGRESP = 0xD0
DISCONNECT = b"\xe0\x00"


class MQTTException(Exception):
    """The broker refused us (``args[0]`` = CONNACK return code) or broke the protocol."""


def _str(value):
    if isinstance(value, str):
        value = value.encode()
    return bytes((len(value) >> 8, len(value) & 0xFF)) + value


def _header(kind, length):
    out = bytearray((kind,))
    while True:
        byte = length & 0x7F
        length >>= 7
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


class MQTTClient:
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=0, tls=False, net=None,
                 clock=None, ack_timeout_ms=ACK_TIMEOUT_MS):
        self.client_id = client_id
        self.server = server
        self.port = port or (8883 if tls else 1883)
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.tls = tls
        self.net = net
        self.clock = clock
        self.ack_timeout_ms = ack_timeout_ms
        self.sock = None  # the Link; closing it (``client.sock.close()``) drops the connection without DISCONNECT
        self.cb = None
        self.pid = 0
        self.pings_pending = 0
        self.lw = None

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        if not topic or not 0 <= qos <= 1:
            raise ValueError("last will needs a topic and QoS 0 or 1")
        self.lw = (topic, msg, retain, qos)

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def _deadline(self):
        return self.clock.ticks_add(self.clock.ticks_ms(), self.ack_timeout_ms)

    def _expired(self, deadline):
        return self.clock.ticks_diff(deadline, self.clock.ticks_ms()) <= 0

    # ------------------------------------------------------------------ packets in

    def _read_packet(self):
        """``(first byte, body)`` of the next packet; every read is bounded by the link's timeout."""
        link = self.sock
        first = link.read_exact(1)[0]
        n = 0
        shift = 0
        while True:
            b = link.read_exact(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MQTTException("malformed remaining length")
        if n > MAX_PACKET_IN:
            raise MQTTException("packet of %d bytes refused" % n)
        body = link.read_exact(n) if n else b""
        return first, body

    def _handle(self, first, body):
        """Act on one packet; returns ``(type, packet id or None)``."""
        kind = first & 0xF0
        if kind == PUBLISH:
            qos = (first >> 1) & 0x03
            if qos > 1:
                raise MQTTException("QoS 2 delivery is not supported")
            if len(body) < 2:
                raise MQTTException("malformed PUBLISH")
            tlen = body[0] << 8 | body[1]
            i = 2 + tlen
            pid = None
            if qos:
                if len(body) < i + 2:
                    raise MQTTException("malformed PUBLISH")
                pid = body[i] << 8 | body[i + 1]
                i += 2
            elif len(body) < i:
                raise MQTTException("malformed PUBLISH")
            if self.cb is not None:
                self.cb(body[2 : 2 + tlen], body[i:])
            if qos == 1:
                self.sock.write(bytes((PUBACK, 2, pid >> 8, pid & 0xFF)))
            return kind, pid
        if kind == PUBACK or kind == SUBACK:
            if len(body) < 2:
                raise MQTTException("malformed acknowledgement")
            if kind == SUBACK and (len(body) < 3 or body[2] == 0x80):
                raise MQTTException("subscription refused")
            return kind, body[0] << 8 | body[1]
        if kind == PINGRESP:
            if body:
                raise MQTTException("malformed PINGRESP")
            self.pings_pending = 0
            return kind, None
        raise MQTTException("unexpected packet 0x%02x" % first)

    def _wait_for(self, kind, pid):
        deadline = self._deadline()
        while True:
            if self._expired(deadline):
                raise OSError(ETIMEDOUT)  # acknowledgements stopped coming: a half-open link
            got = self._handle(*self._read_packet())
            if got[0] == kind and got[1] == pid:
                return

    # ------------------------------------------------------------------ the umqtt.simple calls

    def connect(self, clean_session=True):
        self.pings_pending = 0
        self.sock = self.net.open(self.server, self.port, self.tls)
        try:
            flags = 0x02 if clean_session else 0
            payload = _str(self.client_id)
            if self.lw:
                topic, msg, retain, qos = self.lw
                flags |= 0x04 | qos << 3 | (0x20 if retain else 0)
                payload += _str(topic) + _str(msg)
            if self.user:
                flags |= 0x80
                payload += _str(self.user)
                if self.pswd:
                    flags |= 0x40
                    payload += _str(self.pswd)
            body = b"\x00\x04MQTT\x04" + bytes((flags, self.keepalive >> 8, self.keepalive & 0xFF)) + payload
            self.sock.write(_header(CONNECT, len(body)) + body)
            first, ack = self._read_packet()  # bounded by the link timeout
            if first != CONNACK or len(ack) != 2:
                raise MQTTException("unexpected answer to CONNECT")
            if ack[1] != 0:
                raise MQTTException(ack[1])  # 4: bad user name or password, 5: not authorised
            return ack[0] & 1
        except BaseException:
            self.sock.close()
            raise

    def disconnect(self):
        try:
            self.sock.write(DISCONNECT)
        finally:
            self.sock.close()

    def ping(self):
        self.sock.write(PINGREQ)
        self.pings_pending += 1

    def publish(self, topic, msg, retain=False, qos=0):
        """QoS 1 returns after the PUBACK, or raises OSError(ETIMEDOUT) after ``ack_timeout_ms``."""
        if qos > 1:
            raise ValueError("QoS 2 is not supported")
        body = _str(topic)
        pid = 0
        if qos:
            pid = self._next_pid()
            body += bytes((pid >> 8, pid & 0xFF))
        self.sock.write(_header(PUBLISH | qos << 1 | (1 if retain else 0), len(body) + len(msg)) + body + msg)
        if qos == 1:
            self._wait_for(PUBACK, pid)

    def subscribe(self, topic, qos=0):
        pid = self._next_pid()
        body = bytes((pid >> 8, pid & 0xFF)) + _str(topic) + bytes((qos,))
        self.sock.write(_header(SUBSCRIBE, len(body)) + body)
        self._wait_for(SUBACK, pid)

    def check_msg(self):
        """Handle one waiting packet, if any, without blocking; None when nothing was waiting."""
        if not self.sock.ready():
            return None
        return self._handle(*self._read_packet())[0]

    def wait_msg(self):
        return self._handle(*self._read_packet())[0]
