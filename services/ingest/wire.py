"""A lean MQTT consumer for the ingest: connect, subscribe, read PUBLISHes in bulk, acknowledge in batches.

Why not paho here: profiling the ingest (docs/benchmarks.md) showed paho's network loop taking ~75% of the CPU while
draining a backlog: it reads each packet with several ``recv`` calls and builds a Properties object per message,
which caps a Python subscriber at ~8k msgs/s on two cores while the broker itself delivers ~70k msgs/s to a C client.
The ingest needs only a small, fixed subset of MQTT, so it speaks it directly: one ``recv`` of up to 256 KiB parses
every complete packet in it.  Everything else (the CLI, the config server, the simulator's devices) keeps paho.

Supported: MQTT 5 and 3.1.1; CONNECT with username/password, clean start off, session expiry and receive maximum
(v5); SUBSCRIBE at QoS 1; PUBLISH QoS 0/1 in (QoS 2 is downgraded by the subscription's maximum QoS 1); PUBACK out,
many per write; PINGREQ keepalive; DISCONNECT.  Not supported (not requested in CONNECT, so a broker never sends
them): topic aliases, AUTH, QoS 2.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable

PROTOCOL_5 = "5"
PROTOCOL_311 = "3.1.1"

_CONNECT, _CONNACK, _PUBLISH, _PUBACK = 0x10, 0x20, 0x30, 0x40
_SUBSCRIBE, _SUBACK, _PINGREQ, _PINGRESP, _DISCONNECT = 0x82, 0x90, 0xC0, 0xD0, 0xE0
_PUBACK_HEAD = bytes((_PUBACK, 2))
#: Largest packet accepted from the broker; the broker's own limit is far below (message_size_limit).
MAX_PACKET = 1 << 20
_CONNACK_REASONS_V5 = {
    0x80: "Unspecified error",
    0x81: "Malformed Packet",
    0x82: "Protocol Error",
    0x84: "Unsupported Protocol Version",
    0x85: "Client Identifier not valid",
    0x86: "Bad User Name or Password",
    0x87: "Not authorized",
    0x88: "Server unavailable",
    0x89: "Server busy",
    0x8A: "Banned",
    0x8C: "Bad authentication method",
}
_CONNACK_REASONS_V3 = {
    1: "Unacceptable protocol version",
    2: "Identifier rejected",
    3: "Server unavailable",
    4: "Bad user name or password",
    5: "Not authorized",
}
AUTH_FAILURES = {"Bad User Name or Password", "Not authorized", "Bad user name or password"}


class WireError(OSError):
    """The connection is unusable: protocol error, refusal or a DISCONNECT from the broker."""


class Refused(WireError):
    """The broker refused CONNECT or SUBSCRIBE; ``reason`` is its reason in words."""

    def __init__(self, what: str, reason: str):
        super().__init__(f"broker refused {what}: {reason}")
        self.reason = reason


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data, pos: int) -> tuple[int, int]:
    """(value, next position), or (-1, pos) when the bytes are not all there yet."""
    value, shift = 0, 0
    for index in range(pos, min(pos + 4, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    if len(data) - pos >= 4:
        raise WireError("malformed variable-length integer from the broker")
    return -1, pos


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _packet(header: int, body: bytes) -> bytes:
    return bytes((header,)) + _varint(len(body)) + body


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
    ):
        self.host, self.port, self.client_id = host, port, client_id
        self.username, self.password = username, password
        self.on_message = on_message
        self.v5 = protocol == PROTOCOL_5
        self.keepalive = keepalive
        self.session_expiry = session_expiry
        self.receive_maximum = receive_maximum
        self.sock: socket.socket | None = None
        self.send_lock = threading.Lock()
        self.last_send = 0.0
        self.session_present = False
        self._buf = bytearray()

    # ------------------------------------------------------------------ connection
    def connect(self, timeout: float = 10.0) -> bool:
        """Open the connection and wait for CONNACK; returns whether the broker kept our session."""
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        flags = 0x80 | 0x40  # username, password; clean start/session off: the broker keeps our session
        body = _string("MQTT") + bytes((5 if self.v5 else 4, flags)) + struct.pack("!H", self.keepalive)
        if self.v5:
            props = bytes((0x11,)) + struct.pack("!I", self.session_expiry)
            props += bytes((0x21,)) + struct.pack("!H", self.receive_maximum)
            body += _varint(len(props)) + props
        body += _string(self.client_id) + _string(self.username) + _string(self.password)
        self._send(_packet(_CONNECT, body))
        deadline = time.monotonic() + timeout
        while True:
            header, packet = self._next_packet(deadline)
            if header & 0xF0 == _CONNACK:
                break
        if len(packet) < 2:
            raise WireError("short CONNACK from the broker")
        code = packet[1]
        if code:
            reasons = _CONNACK_REASONS_V5 if self.v5 else _CONNACK_REASONS_V3
            raise Refused("the connection", reasons.get(code, f"reason code 0x{code:02x}"))
        self.session_present = bool(packet[0] & 1)
        return self.session_present

    def subscribe(self, topic_filter: str, packet_id: int = 1) -> None:
        """Send SUBSCRIBE at QoS 1; the SUBACK is checked by :meth:`read` (a refusal raises there)."""
        body = struct.pack("!H", packet_id) + (b"\x00" if self.v5 else b"")
        body += _string(topic_filter) + b"\x01"
        self._send(_packet(_SUBSCRIBE, body))

    def disconnect(self) -> None:
        """A normal DISCONNECT (the session and its queue stay with the broker), then close."""
        with contextlib.suppress(OSError):
            self._send(bytes((_DISCONNECT, 0)))
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
            sock.sendall(data)
            self.last_send = time.monotonic()

    def ack(self, mids: list[int]) -> None:
        """PUBACK each packet id, in order, in one write (v5: no reason code means success)."""
        if mids:
            self._send(b"".join(_PUBACK_HEAD + mid.to_bytes(2, "big") for mid in mids))

    # ------------------------------------------------------------------ reading
    def _fill(self, deadline: float | None) -> None:
        sock = self.sock
        if sock is None:
            raise WireError("not connected")
        wait = max(0.05, min(1.0, self.keepalive / 2))
        if deadline is not None:
            wait = max(0.01, min(wait, deadline - time.monotonic()))
        sock.settimeout(wait)
        try:
            chunk = sock.recv(262144)
        except TimeoutError:
            return
        if not chunk:
            raise WireError("the broker closed the connection")
        self._buf += chunk

    def _next_packet(self, deadline: float) -> tuple[int, bytes]:
        """One packet, for the handshake (before the bulk reader takes over)."""
        while True:
            buf = self._buf
            if len(buf) >= 2:
                length, start = _read_varint(buf, 1)
                if length >= 0 and len(buf) >= start + length:
                    header, packet = buf[0], bytes(buf[start : start + length])
                    del buf[: start + length]
                    return header, packet
            if time.monotonic() > deadline:
                raise WireError("the broker did not answer CONNECT in time")
            self._fill(deadline)

    def read(self, stop: threading.Event) -> None:
        """Read until ``stop`` is set (returns) or the connection fails (raises OSError/WireError)."""
        on_message = self.on_message
        v5 = self.v5
        ping_every = self.keepalive / 2
        while not stop.is_set():
            if time.monotonic() - self.last_send >= ping_every:
                self._send(bytes((_PINGREQ, 0)))
            self._fill(None)
            buf = self._buf
            pos, end = 0, len(buf)
            while end - pos >= 2:
                header = buf[pos]
                length, start = _read_varint(buf, pos + 1)
                if length < 0 or start + length > end:
                    break
                if length > MAX_PACKET:
                    raise WireError(f"packet of {length} bytes from the broker exceeds {MAX_PACKET}")
                stop_at = start + length
                kind = header & 0xF0
                if kind == _PUBLISH:
                    qos = (header >> 1) & 3
                    topic_len = (buf[start] << 8) | buf[start + 1]
                    index = start + 2 + topic_len
                    topic = buf[start + 2 : index].decode("utf-8", "replace")
                    mid = 0
                    if qos:
                        mid = (buf[index] << 8) | buf[index + 1]
                        index += 2
                    if v5:
                        props, index = _read_varint(buf, index)
                        index += props
                    on_message(topic, bytes(buf[index:stop_at]), mid, qos)
                elif kind == _SUBACK:
                    codes = buf[start + 2 : stop_at]
                    if v5:
                        props, after = _read_varint(buf, start + 2)
                        codes = buf[after + props : stop_at]
                    if any(code >= 0x80 for code in codes):
                        raise Refused("the subscription", f"reason code 0x{max(codes):02x}")
                elif kind == _DISCONNECT:
                    code = buf[start] if length else 0
                    raise WireError(f"the broker sent DISCONNECT (reason code 0x{code:02x})")
                # PINGRESP and anything else we never asked for: ignored.
                pos = stop_at
            if pos:
                del buf[:pos]
