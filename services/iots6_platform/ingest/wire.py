"""A lean MQTT consumer for the ingest: connect, subscribe, read PUBLISHes in bulk, acknowledge in batches.

Why not paho here: profiling the ingest (docs/benchmarks.md) showed paho's network loop taking ~75% of the CPU while
draining a backlog: it reads each packet with several ``recv`` calls and builds a Properties object per message,
which caps a Python subscriber at ~8k msgs/s on two cores while the broker itself delivers ~70k msgs/s to a C client.
The ingest needs only a small, fixed subset of MQTT, so it speaks it directly: one ``recv`` of up to 256 KiB parses
every complete packet in it.

Supported: MQTT 5 and 3.1.1, over TCP or TLS (a CA file, optionally a client certificate); CONNECT with
username/password, clean start off, session expiry, receive maximum and maximum packet size (v5); SUBSCRIBE at QoS 1;
PUBLISH QoS 0/1 in; PUBACK out, many per write; PINGREQ keepalive; DISCONNECT.  Never requested, so a broker that
sends them is in error: topic aliases, AUTH, QoS 2, a granted QoS below 1.

Trust nothing the broker sends: the :class:`Decoder` checks every length against its packet before using it,
refuses a packet larger than ``max_packet`` as soon as its fixed header is read (nothing of it is buffered first), and
turns anything an MQTT server may not send into a :class:`WireError`; the connection is then closed (v5: after a
DISCONNECT with the reason), and the caller reconnects.  What was received but not acknowledged is redelivered.

Keepalive: a PINGREQ goes out when we have sent nothing for half the keepalive, or heard nothing for half of it.  When
nothing at all (PINGRESP included) has arrived for 1.5 x keepalive, the connection is half-open and :meth:`read`
raises.  A broker's Server Keep Alive (v5 CONNACK) replaces ours, as the specification requires.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable

PROTOCOL_5 = "5"
PROTOCOL_311 = "3.1.1"

_CONNECT, _CONNACK, _PUBLISH, _PUBACK = 0x10, 0x20, 0x30, 0x40
_SUBSCRIBE, _SUBACK, _PINGREQ, _DISCONNECT = 0x82, 0x90, 0xC0, 0xE0
_PUBACK_HEAD = bytes((_PUBACK, 2))
_PINGREQ_PACKET = bytes((_PINGREQ, 0))
#: Largest packet accepted from the broker (announced in the v5 CONNECT).  The broker's own max_packet_size is far
#: below, so a larger packet means a broken or hostile peer: it is refused from its fixed header alone.
MAX_PACKET = 1 << 20
#: Bytes asked of the socket per read: a backlog arrives as hundreds of packets per call.
RECV_SIZE = 262144

# Reason codes a v5 client sends in DISCONNECT when the broker breaks the protocol.
MALFORMED, PROTOCOL_ERROR, PACKET_TOO_LARGE = 0x81, 0x82, 0x95

_NAMES = {
    0x00: "reserved type 0",
    0x10: "CONNECT",
    0x20: "CONNACK",
    0x30: "PUBLISH",
    0x40: "PUBACK",
    0x50: "PUBREC",
    0x60: "PUBREL",
    0x70: "PUBCOMP",
    0x80: "SUBSCRIBE",
    0x90: "SUBACK",
    0xA0: "UNSUBSCRIBE",
    0xB0: "UNSUBACK",
    0xC0: "PINGREQ",
    0xD0: "PINGRESP",
    0xE0: "DISCONNECT",
    0xF0: "AUTH",
}
#: MQTT 5 reason codes of CONNACK, SUBACK and DISCONNECT, in words.
_REASONS_V5 = {
    0x00: "Normal disconnection",
    0x80: "Unspecified error",
    0x81: "Malformed Packet",
    0x82: "Protocol Error",
    0x83: "Implementation specific error",
    0x84: "Unsupported Protocol Version",
    0x85: "Client Identifier not valid",
    0x86: "Bad User Name or Password",
    0x87: "Not authorized",
    0x88: "Server unavailable",
    0x89: "Server busy",
    0x8A: "Banned",
    0x8B: "Server shutting down",
    0x8C: "Bad authentication method",
    0x8D: "Keep Alive timeout",
    0x8E: "Session taken over",
    0x8F: "Topic Filter invalid",
    0x90: "Topic Name invalid",
    0x91: "Packet Identifier in use",
    0x93: "Receive Maximum exceeded",
    0x94: "Topic Alias invalid",
    0x95: "Packet too large",
    0x97: "Quota exceeded",
    0x98: "Administrative action",
    0x99: "Payload format invalid",
    0x9A: "Retain not supported",
    0x9B: "QoS not supported",
    0x9C: "Use another server",
    0x9D: "Server moved",
    0x9E: "Shared Subscriptions not supported",
    0x9F: "Connection rate exceeded",
    0xA0: "Maximum connect time",
    0xA1: "Subscription Identifiers not supported",
    0xA2: "Wildcard Subscriptions not supported",
}
_CONNACK_REASONS_V3 = {
    1: "Unacceptable protocol version",
    2: "Identifier rejected",
    3: "Server unavailable",
    4: "Bad user name or password",
    5: "Not authorized",
}

# v5 properties: identifier -> how its value is encoded.
_BYTE, _U16, _U32, _VARINT, _UTF8, _BINARY, _PAIR = range(7)
_PROPERTY_TYPES = {
    0x01: _BYTE,  # payload format indicator
    0x02: _U32,  # message expiry interval
    0x03: _UTF8,  # content type
    0x08: _UTF8,  # response topic
    0x09: _BINARY,  # correlation data
    0x0B: _VARINT,  # subscription identifier
    0x11: _U32,  # session expiry interval
    0x12: _UTF8,  # assigned client identifier
    0x13: _U16,  # server keep alive
    0x15: _UTF8,  # authentication method
    0x16: _BINARY,  # authentication data
    0x17: _BYTE,  # request problem information
    0x18: _U32,  # will delay interval
    0x19: _BYTE,  # request response information
    0x1A: _UTF8,  # response information
    0x1C: _UTF8,  # server reference
    0x1F: _UTF8,  # reason string
    0x21: _U16,  # receive maximum
    0x22: _U16,  # topic alias maximum
    0x23: _U16,  # topic alias
    0x24: _BYTE,  # maximum QoS
    0x25: _BYTE,  # retain available
    0x26: _PAIR,  # user property
    0x27: _U32,  # maximum packet size
    0x28: _BYTE,  # wildcard subscription available
    0x29: _BYTE,  # subscription identifier available
    0x2A: _BYTE,  # shared subscription available
}
_REPEATABLE = {0x26, 0x0B}
# Which properties each packet may carry from a server.  Topic alias (0x23) is absent from PUBLISH: we announce a
# Topic Alias Maximum of 0, so a broker may not use one.  AUTH properties are absent from CONNACK: we never send an
# authentication method.
_PUBLISH_PROPS = frozenset({0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x26})
_CONNACK_PROPS = frozenset({0x11, 0x12, 0x13, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A})
_SUBACK_PROPS = frozenset({0x1F, 0x26})
_DISCONNECT_PROPS = frozenset({0x11, 0x1C, 0x1F, 0x26})


class WireError(OSError):
    """The connection is unusable: a protocol error, a refusal, a dead peer or a DISCONNECT from the broker.

    ``reason_code`` is the MQTT 5 reason we tell the broker in our DISCONNECT (None: just close)."""

    def __init__(self, message: str, reason_code: int | None = None):
        super().__init__(message)
        self.reason_code = reason_code


class Refused(WireError):
    """The broker refused CONNECT or SUBSCRIBE; ``reason`` is its reason in words."""

    def __init__(self, what: str, reason: str):
        super().__init__(f"broker refused {what}: {reason}")
        self.reason = reason


def _malformed(what: str) -> WireError:
    return WireError(f"malformed packet from the broker: {what}", MALFORMED)


def _protocol_error(what: str) -> WireError:
    return WireError(f"protocol error by the broker: {what}", PROTOCOL_ERROR)


def _reason_v5(code: int, props: dict) -> str:
    text = f"{_REASONS_V5.get(code, 'reason code')} (0x{code:02x})"
    if 0x1F in props:
        text += f": {props[0x1F]}"
    return text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data, pos: int, end: int | None = None) -> tuple[int, int]:
    """(value, next position), or (-1, pos) when the bytes are not all there yet (before ``end``)."""
    end = len(data) if end is None else end
    value, shift = 0, 0
    for index in range(pos, min(pos + 4, end)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    if end - pos >= 4:
        raise _malformed("variable byte integer longer than 4 bytes")
    return -1, pos


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _packet(header: int, body: bytes) -> bytes:
    return bytes((header,)) + _varint(len(body)) + body


def _properties(buf, pos: int, end: int, allowed: frozenset, packet: str) -> tuple[dict, int]:
    """A v5 property block at ``pos`` (its length first), all inside ``end``: ({identifier: value}, next position).
    Repeatable properties keep their last value."""
    length, pos = _read_varint(buf, pos, end)
    if length < 0:
        raise _malformed(f"{packet} property length runs past the packet")
    stop = pos + length
    if stop > end:
        raise _malformed(f"{packet} properties ({length} bytes) run past the packet")
    props: dict[int, object] = {}
    while pos < stop:
        ident = buf[pos]
        kind = _PROPERTY_TYPES.get(ident)
        if kind is None:
            raise _malformed(f"unknown property 0x{ident:02x} in {packet}")
        if ident not in allowed:
            raise _protocol_error(f"property 0x{ident:02x} is not allowed in {packet}")
        if ident in props and ident not in _REPEATABLE:
            raise _protocol_error(f"property 0x{ident:02x} appears twice in {packet}")
        pos += 1
        if kind == _BYTE:
            size = 1
        elif kind == _U16:
            size = 2
        elif kind == _U32:
            size = 4
        elif kind == _VARINT:
            value, after = _read_varint(buf, pos, stop)
            if value < 0:
                raise _malformed(f"property 0x{ident:02x} runs past the properties of {packet}")
            props[ident], pos = value, after
            continue
        else:
            if pos + 2 > stop:
                raise _malformed(f"property 0x{ident:02x} runs past the properties of {packet}")
            size = 2 + ((buf[pos] << 8) | buf[pos + 1])
            if kind == _PAIR and pos + size + 2 <= stop:
                size += 2 + ((buf[pos + size] << 8) | buf[pos + size + 1])
            elif kind == _PAIR:
                raise _malformed(f"property 0x{ident:02x} runs past the properties of {packet}")
        if pos + size > stop:
            raise _malformed(f"property 0x{ident:02x} runs past the properties of {packet}")
        if kind == _UTF8:
            props[ident] = bytes(buf[pos + 2 : pos + size]).decode("utf-8", "replace")
        else:
            props[ident] = int.from_bytes(buf[pos : pos + size], "big") if kind <= _U32 else None
        pos += size
    return props, stop


class Decoder:
    """The packets a broker sends a subscriber, from a byte stream fed in chunks of any size.

    Until the CONNACK it accepts only a CONNACK, and stops right after it (what follows stays buffered for
    :meth:`feed` to parse once the caller is ready for messages).  Then: PUBLISH (QoS 0/1) goes to
    ``on_message(topic, payload, mid, qos)``; SUBACK (for a subscription we sent), PINGRESP and DISCONNECT are
    checked.  Anything else, and any length that does not fit, raises :class:`WireError`; a refusal raises
    :class:`Refused`."""

    def __init__(self, v5: bool, on_message: Callable[[str, bytes, int, int], None], max_packet: int = MAX_PACKET):
        self.v5 = v5
        self.on_message = on_message
        self.max_packet = max_packet
        self.buf = bytearray()
        #: (session present, CONNACK properties) once the CONNACK has arrived.
        self.connack: tuple[bool, dict] | None = None
        #: Packet ids of SUBSCRIBEs sent and not yet acknowledged.
        self.pending_subscriptions: set[int] = set()

    def feed(self, chunk: bytes) -> None:
        """Parse every complete packet in what has arrived; keep the incomplete rest for the next chunk."""
        buf = self.buf
        buf += chunk
        on_message = self.on_message
        v5 = self.v5
        max_packet = self.max_packet
        connected = self.connack is not None  # a CONNACK ends this call, so this holds throughout it
        pos, end = 0, len(buf)
        try:
            while end - pos >= 2:
                header = buf[pos]
                length = buf[pos + 1]
                if length < 128:
                    start = pos + 2
                elif end - pos > 2 and buf[pos + 2] < 128:  # 128 B .. 16 KiB: most readings, inline
                    length = (length & 0x7F) | (buf[pos + 2] << 7)
                    start = pos + 3
                else:
                    length, start = _read_varint(buf, pos + 1)
                    if length < 0:
                        break
                if length > max_packet:  # from the fixed header alone, before any of the body is buffered
                    raise WireError(
                        f"packet of {length} bytes from the broker exceeds the {max_packet}-byte limit",
                        PACKET_TOO_LARGE,
                    )
                stop_at = start + length
                if stop_at > end:
                    break
                if header & 0xF0 == _PUBLISH and connected:
                    if length < 2:
                        raise _malformed("PUBLISH shorter than its topic length")
                    index = start + 2 + ((buf[start] << 8) | buf[start + 1])
                    topic_end = index
                    qos = (header >> 1) & 3
                    mid = 0
                    if qos:
                        if qos == 3:
                            raise _malformed("PUBLISH with QoS 3")
                        if qos == 2:
                            raise _protocol_error("PUBLISH with QoS 2 on a QoS 1 subscription")
                        if index + 2 > stop_at:
                            raise _malformed("PUBLISH topic length runs past the packet")
                        mid = (buf[index] << 8) | buf[index + 1]
                        if not mid:
                            raise _protocol_error("QoS 1 PUBLISH with packet identifier 0")
                        index += 2
                    elif header & 0x08:
                        raise _malformed("QoS 0 PUBLISH with the DUP flag")
                    if v5:
                        if index >= stop_at:
                            raise _malformed("PUBLISH topic length runs past the packet")
                        if buf[index]:
                            _, index = _properties(buf, index, stop_at, _PUBLISH_PROPS, "PUBLISH")
                        else:
                            index += 1
                    elif index > stop_at:
                        raise _malformed("PUBLISH topic length runs past the packet")
                    if topic_end == start + 2:
                        raise _protocol_error("PUBLISH with an empty topic")
                    on_message(
                        buf[start + 2 : topic_end].decode("utf-8", "replace"), bytes(buf[index:stop_at]), mid, qos
                    )
                else:
                    self._control(header, buf, start, stop_at)
                    if self.connack is not None and header == _CONNACK:
                        pos = stop_at
                        break  # the caller reads on once it is ready for messages
                pos = stop_at
        finally:
            if pos:
                del buf[:pos]

    def _control(self, header: int, buf, start: int, end: int) -> None:
        """Every packet but PUBLISH: rare, so clarity over speed."""
        kind = header & 0xF0
        name = _NAMES[kind]
        if self.connack is None and kind != _CONNACK:
            raise _protocol_error(f"{name} before CONNACK")
        expected = {_CONNACK: _CONNACK, _SUBACK: _SUBACK, 0xD0: 0xD0, _DISCONNECT: _DISCONNECT}.get(kind)
        if expected is None or (kind == _DISCONNECT and not self.v5):
            raise _protocol_error(f"{name}, which a server never sends to this client")
        if header != expected:
            raise _malformed(f"{name} with reserved flags 0x{header & 0x0F:x}")
        length = end - start
        if kind == _CONNACK:
            self._connack(buf, start, end, length)
        elif kind == _SUBACK:
            self._suback(buf, start, end, length)
        elif kind == 0xD0:  # PINGRESP: its arrival is the sign of life the keepalive looks for
            if length:
                raise _malformed(f"PINGRESP with {length} bytes of body")
        else:  # DISCONNECT (v5)
            code, props = 0, {}
            if length:
                code = buf[start]
                if length > 1:
                    props, _ = _properties(buf, start + 1, end, _DISCONNECT_PROPS, "DISCONNECT")
            raise WireError(f"the broker sent DISCONNECT: {_reason_v5(code, props)}")

    def _connack(self, buf, start: int, end: int, length: int) -> None:
        if self.connack is not None:
            raise _protocol_error("a second CONNACK")
        if length < 2 or (not self.v5 and length != 2):
            raise _malformed(f"CONNACK of {length} bytes")
        flags, code = buf[start], buf[start + 1]
        if flags & 0xFE:
            raise _malformed(f"CONNACK with reserved flags 0x{flags:02x}")
        props: dict = {}
        if self.v5:
            if length < 3:
                raise _malformed("CONNACK without its property length")
            props, after = _properties(buf, start + 2, end, _CONNACK_PROPS, "CONNACK")
            if after != end:
                raise _malformed("CONNACK with bytes after its properties")
        if code:
            reason = _reason_v5(code, props) if self.v5 else _CONNACK_REASONS_V3.get(code, f"return code {code}")
            raise Refused("the connection", reason)
        self.connack = (bool(flags & 1), props)

    def _suback(self, buf, start: int, end: int, length: int) -> None:
        if length < 3:
            raise _malformed(f"SUBACK of {length} bytes")
        packet_id = (buf[start] << 8) | buf[start + 1]
        if packet_id not in self.pending_subscriptions:
            raise _protocol_error(f"SUBACK for packet identifier {packet_id}, which we did not send")
        self.pending_subscriptions.discard(packet_id)
        props: dict = {}
        after = start + 2
        if self.v5:
            props, after = _properties(buf, after, end, _SUBACK_PROPS, "SUBACK")
        codes = bytes(buf[after:end])
        if len(codes) != 1:
            raise _protocol_error(f"SUBACK with {len(codes)} reason codes for one topic filter")
        code = codes[0]
        if code >= 0x80:
            reason = _reason_v5(code, props) if self.v5 else f"failure (0x{code:02x})"
            raise Refused("the subscription", reason)
        if code != 1:
            raise Refused("the subscription", f"granted QoS {code} where QoS 1 is needed to acknowledge after commit")


def tls_context(ca_file: str, cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
    """A client context that verifies the broker against ``ca_file`` (and its host name), TLS 1.2 or newer,
    presenting ``cert_file``/``key_file`` when given.  Raises OSError (ssl.SSLError included) when a file is
    unusable, ValueError when the key is encrypted (a service has nobody to type a passphrase)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    return context


def _no_passphrase() -> bytes:
    """Called by OpenSSL only for an encrypted key (instead of prompting on a terminal)."""
    raise ValueError("the private key is encrypted")


class Consumer:
    """One connection. ``on_message(topic, payload, mid, qos)`` is called on the reading thread for each PUBLISH;
    ``ack(mids)`` may be called from any thread."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        username: str,
        password: str,
        on_message: Callable[[str, bytes, int, int], None],
        *,
        protocol: str = PROTOCOL_5,
        keepalive: int = 30,
        session_expiry: int = 0,
        receive_maximum: int = 65535,
        max_packet: int = MAX_PACKET,
        tls: ssl.SSLContext | None = None,
    ):
        self.host, self.port, self.client_id = host, port, client_id
        self.username, self.password = username, password
        self.on_message = on_message
        self.v5 = protocol == PROTOCOL_5
        self.keepalive = keepalive
        self.session_expiry = session_expiry
        self.receive_maximum = receive_maximum
        self.max_packet = max_packet
        self.tls = tls
        self.sock: socket.socket | None = None
        # Held for every write; with TLS also for every read (an SSL object is not safe to use from two threads).
        self.send_lock = threading.Lock()
        self.last_send = 0.0
        self.last_recv = 0.0
        self.last_ping = 0.0
        self.decoder = Decoder(self.v5, on_message, max_packet)
        self._poll: select.poll | None = None

    # ------------------------------------------------------------------ connection
    def _wait(self) -> float:
        """How long one read waits before the loop looks at the keepalive and the stop flag again."""
        return max(0.05, min(1.0, self.keepalive / 2)) if self.keepalive else 1.0

    def connect(self, timeout: float = 10.0) -> bool:
        """Open the connection (TLS handshake included) and wait for CONNACK; returns whether the broker kept our
        session."""
        deadline = time.monotonic() + timeout
        raw = socket.create_connection((self.host, self.port), timeout=timeout)
        sock = raw
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                if self.tls is not None:
                    sock = self.tls.wrap_socket(raw, server_hostname=self.host)
                self.sock = sock
                self.decoder = Decoder(self.v5, self.on_message, self.max_packet)
                self._send(_packet(_CONNECT, self._connect_body()))
                while self.decoder.connack is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise WireError(f"the broker did not answer CONNECT within {timeout:g} s")
                    sock.settimeout(left)
                    try:
                        chunk = sock.recv(RECV_SIZE)
                    except TimeoutError:
                        continue
                    if not chunk:
                        raise WireError("the broker closed the connection before CONNACK")
                    self.decoder.feed(chunk)
            except ssl.SSLError as exc:  # a certificate that does not verify, or one the broker refused (TLS 1.3)
                reason = getattr(exc, "verify_message", None) or exc.reason or exc.strerror or str(exc)
                raise WireError(f"TLS with {self.host}:{self.port} failed: {reason}") from None
        except BaseException:
            self.close()
            with contextlib.suppress(OSError):
                raw.close()  # when the TLS handshake failed, nothing else holds it
            raise
        session_present, props = self.decoder.connack
        if 0x13 in props:  # Server Keep Alive: the broker's value replaces ours
            self.keepalive = props[0x13]
        sock.settimeout(self._wait())
        if self.tls is not None:
            self._poll = select.poll()
            self._poll.register(sock, select.POLLIN)
        self.last_recv = time.monotonic()
        return session_present

    def _connect_body(self) -> bytes:
        flags = 0x80 | 0x40  # username, password; clean start/session off: the broker keeps our session
        body = _string("MQTT") + bytes((5 if self.v5 else 4, flags)) + struct.pack("!H", self.keepalive)
        if self.v5:
            props = bytes((0x11,)) + struct.pack("!I", self.session_expiry)
            props += bytes((0x21,)) + struct.pack("!H", self.receive_maximum)
            props += bytes((0x27,)) + struct.pack("!I", self.max_packet)
            body += _varint(len(props)) + props
        return body + _string(self.client_id) + _string(self.username) + _string(self.password)

    def subscribe(self, topic_filter: str, packet_id: int = 1) -> None:
        """Send SUBSCRIBE at QoS 1; the SUBACK is checked by :meth:`read` (a refusal raises there)."""
        body = struct.pack("!H", packet_id) + (b"\x00" if self.v5 else b"")
        body += _string(topic_filter) + b"\x01"
        self.decoder.pending_subscriptions.add(packet_id)
        self._send(_packet(_SUBSCRIBE, body))

    def disconnect(self, reason_code: int = 0) -> None:
        """A DISCONNECT (the session and its queue stay with the broker), then close.  v5 carries the reason."""
        with contextlib.suppress(OSError):
            self._send(bytes((_DISCONNECT, 1, reason_code)) if self.v5 and reason_code else bytes((_DISCONNECT, 0)))
        self.close()

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    # ------------------------------------------------------------------ sending
    def _send(self, data: bytes) -> None:
        sock = self.sock
        if sock is None:
            raise WireError("not connected")
        with self.send_lock:
            try:
                self._write(sock, data)
            except OSError:
                # Part of a packet may be out: the stream is unusable.  Shut it so the reader stops at once.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                raise
            self.last_send = time.monotonic()

    def _write(self, sock: socket.socket, data: bytes) -> None:
        """All of ``data``; the socket's short timeout (the read loop's tick) is retried for one keepalive period
        (5 s without keepalive) before the broker counts as not reading."""
        view = memoryview(data)
        give_up = 0.0
        while view:
            try:
                sent = sock.send(view)
            except TimeoutError:
                now = time.monotonic()
                give_up = give_up or now + (self.keepalive or 5)
                if now >= give_up:
                    raise WireError("the broker stopped reading: a write timed out") from None
                continue
            view = view[sent:]

    def ack(self, mids: list[int]) -> None:
        """PUBACK each packet id, in order, in one write (v5: no reason code means success)."""
        if mids:
            self._send(b"".join(_PUBACK_HEAD + mid.to_bytes(2, "big") for mid in mids))

    # ------------------------------------------------------------------ reading
    def _recv_tls(self, sock) -> bytes | None:
        """One read under the send lock, taken only once there is something to read."""
        if not sock.pending() and not self._poll.poll(int(self._wait() * 1000)):
            return None
        with self.send_lock:
            try:
                return sock.recv(RECV_SIZE)
            except (TimeoutError, ssl.SSLWantReadError):  # a TLS record not complete yet
                return None

    def read(self, stop: threading.Event) -> None:
        """Read until ``stop`` is set (returns) or the connection fails (raises OSError/WireError)."""
        sock = self.sock
        if sock is None:
            raise WireError("not connected")
        feed = self.decoder.feed
        keepalive = self.keepalive
        half, dead_after = keepalive / 2, keepalive * 1.5
        tls = self.tls is not None
        try:
            feed(b"")  # whatever arrived with the CONNACK
            while not stop.is_set():
                if keepalive:
                    now = time.monotonic()
                    silent = now - self.last_recv
                    if silent >= dead_after:
                        raise WireError(
                            f"nothing from the broker for {silent:.1f} s (keepalive {keepalive} s): "
                            "the connection is half-open"
                        )
                    if now - self.last_send >= half or (silent >= half and now - self.last_ping >= half):
                        self.last_ping = now
                        self._send(_PINGREQ_PACKET)
                if tls:
                    chunk = self._recv_tls(sock)
                else:
                    try:
                        chunk = sock.recv(RECV_SIZE)
                    except TimeoutError:
                        continue
                if chunk is None:
                    continue
                if not chunk:
                    raise WireError("the broker closed the connection")
                self.last_recv = time.monotonic()
                feed(chunk)
        except WireError as exc:
            if exc.reason_code and self.v5:  # tell the broker why before closing (best effort)
                self.disconnect(exc.reason_code)
            raise
