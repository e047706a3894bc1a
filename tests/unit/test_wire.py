"""The ingest's MQTT reader at the codec level, on byte strings written by hand from the MQTT 5.0 / 3.1.1
specifications (and on packets paho encodes), never only on what the module's own encoder produces.

The broker side is a socket the test writes to (a socket pair, or a listener on 127.0.0.1 for CONNECT); a real
Mosquitto is exercised by tests/integration/test_wire_broker.py, test_ingest.py and test_no_loss.py.  The
property-based decoder tests are in test_wire_fuzz.py.
"""

from __future__ import annotations

import socket
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from iots6_platform.ingest import wire

CONNACK_V5 = bytes.fromhex("20 03 00 00 00")  # session not present, success, no properties
CONNACK_V3 = bytes.fromhex("20 02 00 00")


def decoder(v5: bool = True, connected: bool = True, max_packet: int = wire.MAX_PACKET):
    got: list[tuple[str, bytes, int, int]] = []
    dec = wire.Decoder(v5, lambda *m: got.append(m), max_packet)
    if connected:
        dec.feed(CONNACK_V5 if v5 else CONNACK_V3)
        assert dec.connack == (False, {})
    return dec, got


def fails(dec, data: bytes, kind=wire.WireError) -> wire.WireError:
    with pytest.raises(kind) as info:
        dec.feed(data)
    return info.value


# --------------------------------------------------------------------------------------------------- PUBLISH
def test_publish_qos0_and_qos1_written_by_hand():
    dec, got = decoder(v5=False)
    # 3.1.1 PUBLISH QoS 0: 0x30, remaining length 10, topic "a/b" (00 03 61 2f 62), payload "hello"
    dec.feed(bytes.fromhex("30 0a 00 03 61 2f 62") + b"hello")
    # QoS 1, retain: 0x33, remaining 10, topic "t" (00 01 74), packet id 0x1234, 5 bytes of payload
    dec.feed(bytes.fromhex("33 0a 00 01 74 12 34") + b'{"x"}')
    assert got == [("a/b", b"hello", 0, 0), ("t", b'{"x"}', 0x1234, 1)]


def test_v5_publish_properties_are_checked_and_skipped():
    dec, got = decoder(v5=True)
    props = (
        bytes.fromhex("01 01")  # payload format indicator: UTF-8
        + bytes.fromhex("02 00 00 00 3c")  # message expiry 60 s
        + bytes.fromhex("03 00 10")
        + b"application/json"  # content type
        + bytes.fromhex("26 00 01 6b 00 01 76")  # user property k=v
        + bytes.fromhex("26 00 01 6b 00 01 77")  # user property, repeated: allowed
        + bytes.fromhex("0b 81 01")  # subscription identifier 129 (two-byte varint)
    )
    body = bytes.fromhex("00 01 74 00 07") + bytes((len(props),)) + props + b"payload"
    dec.feed(bytes((0x32, len(body))) + body)
    assert got == [("t", b"payload", 7, 1)]


@pytest.mark.parametrize(
    "packet, words",
    [
        # topic length 9 but only 3 bytes of topic: the old reader took the next packet as topic
        (bytes.fromhex("30 05 00 09 61 62 63"), "topic length runs past"),
        (bytes.fromhex("32 05 00 03 61 62 63"), "topic length runs past"),  # QoS 1: no room for the packet id
        (bytes.fromhex("30 01 00"), "shorter than its topic length"),
        (bytes.fromhex("36 05 00 01 61 00 01"), "QoS 3"),
        (bytes.fromhex("38 04 00 01 61 00"), "DUP"),  # DUP on QoS 0
    ],
)
def test_malformed_publish_is_a_protocol_error_and_swallows_nothing(packet, words):
    dec, got = decoder(v5=False)
    following = bytes.fromhex("30 05 00 01 74") + b"ok"
    error = fails(dec, packet + following)
    assert words in str(error) and error.reason_code == wire.MALFORMED
    assert got == []


@pytest.mark.parametrize(
    "v5, packet, words",
    [
        (False, bytes.fromhex("34 05 00 01 61 00 01"), "QoS 2"),
        (False, bytes.fromhex("32 05 00 01 61 00 00"), "packet identifier 0"),
        (False, bytes.fromhex("30 02 00 00"), "empty topic"),
        (True, bytes.fromhex("30 07 00 01 61 03 23 00 01"), "property 0x23"),  # topic alias: we allow none
        (True, bytes.fromhex("30 08 00 01 61 04 01 01 01 01"), "twice"),  # payload format indicator twice
    ],
)
def test_publish_breaking_the_rules_is_a_protocol_error(v5, packet, words):
    dec, got = decoder(v5=v5)
    error = fails(dec, packet)
    assert words in str(error) and error.reason_code == wire.PROTOCOL_ERROR
    assert got == []


@pytest.mark.parametrize(
    "packet",
    [
        bytes.fromhex("30 04 00 01 61 05"),  # property length 5, nothing follows
        bytes.fromhex("30 07 00 01 61 02 03 00 05"),  # content type of 5 bytes in a 2-byte block
        bytes.fromhex("30 06 00 01 61 01 7f 00"),  # unknown property 0x7f
        bytes.fromhex("30 04 00 01 61"),  # no property length at all
        bytes.fromhex("30 08 00 01 61 03 26 00 01 6b"),  # user property without its value
    ],
)
def test_v5_property_block_that_does_not_fit_is_malformed(packet):
    dec, got = decoder(v5=True)
    packet = packet[:1] + bytes((len(packet) - 2,)) + packet[2:]  # remaining length = what follows
    assert fails(dec, packet).reason_code == wire.MALFORMED
    assert got == []


# --------------------------------------------------------------------------------------------------- sizes
def test_200_mib_announcement_is_refused_from_the_fixed_header_alone():
    dec, _ = decoder()
    header = bytes.fromhex("30 80 80 80 64")  # remaining length 0x64 << 21 = 209,715,200 bytes (200 MiB)
    error = fails(dec, header)
    assert "209715200 bytes" in str(error) and error.reason_code == wire.PACKET_TOO_LARGE
    assert len(dec.buf) <= len(header)  # nothing buffered beyond the header itself


def test_size_limit_is_inclusive():
    dec, got = decoder(v5=False, max_packet=8)
    dec.feed(bytes.fromhex("30 08 00 01 74") + b"12345")  # exactly 8
    assert got == [("t", b"12345", 0, 0)]
    assert fails(dec, bytes.fromhex("30 09")).reason_code == wire.PACKET_TOO_LARGE  # one more: refused unseen


def test_five_byte_remaining_length_is_malformed():
    dec, _ = decoder()
    assert "longer than 4 bytes" in str(fails(dec, bytes.fromhex("30 ff ff ff ff 01")))


def test_truncated_packets_wait_and_split_packets_join():
    """Every prefix yields exactly the packets complete in it; feeding byte by byte yields the same as at once."""
    stream = (
        bytes.fromhex("30 0a 00 03 61 2f 62")
        + b"hello"
        + bytes.fromhex("d0 00")  # PINGRESP
        + bytes.fromhex("32 82 01 00 01 74 ff ff")  # remaining length 130 (two-byte varint), packet id 65535
        + b"x" * 125
    )
    whole = [("a/b", b"hello", 0, 0), ("t", b"x" * 125, 0xFFFF, 1)]
    for cut in range(len(stream) + 1):
        dec, got = decoder(v5=False)
        dec.feed(stream[:cut])
        complete = [m for m, end in zip(whole, (12, len(stream)), strict=True) if end <= cut]
        assert got == complete, cut
        dec.feed(stream[cut:])
        assert got == whole
    dec, got = decoder(v5=False)
    for i in range(len(stream)):
        dec.feed(stream[i : i + 1])
    assert got == whole and not dec.buf


# --------------------------------------------------------------------------------------------------- control
def test_connack_refusals_in_words():
    cases = [
        (True, "20 03 00 86 00", "Bad User Name or Password (0x86)"),
        (True, "20 03 00 87 00", "Not authorized (0x87)"),
        (False, "20 02 00 04", "Bad user name or password"),
        (False, "20 02 00 05", "Not authorized"),
        (False, "20 02 00 01", "Unacceptable protocol version"),
    ]
    for v5, packet, words in cases:
        dec, _ = decoder(v5=v5, connected=False)
        error = fails(dec, bytes.fromhex(packet), wire.Refused)
        assert words in str(error) and str(error).startswith("broker refused the connection")
    # v5 with a reason string (property 0x1f)
    dec, _ = decoder(v5=True, connected=False)
    error = fails(dec, bytes.fromhex("20 09 00 8a 06 1f 00 03") + b"bye", wire.Refused)
    assert "Banned (0x8a): bye" in str(error)


def test_connack_properties_and_what_follows_it():
    dec, got = decoder(v5=True, connected=False)
    # session present, success, server keep alive 5 s, then a queued PUBLISH in the same chunk
    queued = bytes.fromhex("32 06 00 01 74 00 09 00")
    dec.feed(bytes.fromhex("20 06 01 00 03 13 00 05") + queued)
    assert dec.connack == (True, {0x13: 5})
    assert got == [] and bytes(dec.buf) == queued  # not delivered before the caller is ready
    dec.feed(b"")
    assert got == [("t", b"", 9, 1)]


@pytest.mark.parametrize(
    "v5, packet, words",
    [
        (False, "20 01 00", "CONNACK of 1 bytes"),
        (False, "20 03 00 00 00", "CONNACK of 3 bytes"),
        (False, "20 02 02 00", "reserved flags"),
        (True, "20 02 00 00", "without its property length"),
        (True, "21 03 00 00 00", "reserved flags"),
        (True, "20 05 00 00 00 01 02", "after its properties"),
        (True, "20 05 00 00 02 15 00", "not allowed in CONNACK"),  # authentication method: we sent none
        (False, "30 03 00 01 74", "PUBLISH before CONNACK"),
        (False, "d0 00", "PINGRESP before CONNACK"),
    ],
)
def test_bad_connack(v5, packet, words):
    dec, _ = decoder(v5=v5, connected=False)
    assert words in str(fails(dec, bytes.fromhex(packet)))
    assert dec.connack is None


def test_suback_grants_refusals_and_strays():
    dec, _ = decoder(v5=True)
    dec.pending_subscriptions.add(1)
    dec.feed(bytes.fromhex("90 04 00 01 00 01"))  # granted QoS 1
    assert dec.pending_subscriptions == set()

    cases = [
        (True, "90 04 00 01 00 87", wire.Refused, "Not authorized (0x87)"),
        (True, "90 04 00 01 00 9e", wire.Refused, "Shared Subscriptions not supported (0x9e)"),
        (True, "90 0a 00 01 06 1f 00 03 61 63 6c 80", wire.Refused, "Unspecified error (0x80): acl"),
        (False, "90 03 00 01 80", wire.Refused, "failure (0x80)"),
        (False, "90 03 00 01 00", wire.Refused, "granted QoS 0"),
        (False, "90 03 00 02 01", wire.WireError, "packet identifier 2, which we did not send"),
        (False, "90 04 00 01 01 01", wire.WireError, "2 reason codes"),
        (False, "90 02 00 01", wire.WireError, "SUBACK of 2 bytes"),
        (False, "92 03 00 01 01", wire.WireError, "reserved flags"),
    ]
    for v5, packet, kind, words in cases:
        dec, _ = decoder(v5=v5)
        dec.pending_subscriptions.add(1)
        error = fails(dec, bytes.fromhex(packet), kind)
        assert words in str(error), (packet, str(error))


@pytest.mark.parametrize(
    "v5, packet, words",
    [
        (True, "e0 00", "Normal disconnection (0x00)"),
        (True, "e0 01 8e", "Session taken over (0x8e)"),
        (True, "e0 08 8b 06 1f 00 03 62 79 65", "Server shutting down (0x8b): bye"),
        (False, "e0 00", "DISCONNECT, which a server never sends"),
        (False, "d0 01 00", "PINGRESP with 1 bytes"),
        (False, "d8 00", "reserved flags"),
        (False, "40 02 00 01", "PUBACK, which a server never sends"),
        (False, "62 02 00 01", "PUBREL, which a server never sends"),
        (False, "b0 02 00 01", "UNSUBACK, which a server never sends"),
        (True, "f0 00", "AUTH, which a server never sends"),
        (False, "c0 00", "PINGREQ, which a server never sends"),
        (False, "10 00", "CONNECT, which a server never sends"),
        (False, "00 00", "reserved type 0"),
        (False, "20 02 00 00", "a second CONNACK"),
    ],
)
def test_control_packets_that_end_the_connection(v5, packet, words):
    dec, got = decoder(v5=v5)
    assert words in str(fails(dec, bytes.fromhex(packet)))
    assert got == []


def test_pingresp_is_accepted_between_publishes():
    dec, got = decoder(v5=False)
    dec.feed(bytes.fromhex("d0 00 30 03 00 01 74 d0 00"))
    assert got == [("t", b"", 0, 0)]


# --------------------------------------------------------------------------------------------------- paho's bytes
class FakeBrokerForPaho:
    """Not a broker: a listener that answers paho's CONNECT with a CONNACK and records the bytes paho sends after
    it, so paho serves as an independent encoder of PUBLISH packets (client and server PUBLISH are the same)."""

    def __init__(self, v5: bool):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.data = bytearray()
        self.v5 = v5
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(10)
            first = conn.recv(65536)
            assert first[0] == 0x10
            conn.sendall(CONNACK_V5 if self.v5 else CONNACK_V3)
            while chunk := conn.recv(65536):
                self.data += chunk

    def close(self):
        self.thread.join(10)
        self.listener.close()


@pytest.mark.parametrize("v5", [True, False], ids=["v5", "v3.1.1"])
def test_publish_packets_encoded_by_paho(v5):
    capture = FakeBrokerForPaho(v5)
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="paho-enc", protocol=paho.MQTTv5 if v5 else paho.MQTTv311
    )
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect("127.0.0.1", capture.port)
    client.loop_start()
    assert connected.wait(10)
    props = None
    if v5:
        props = Properties(PacketTypes.PUBLISH)
        props.PayloadFormatIndicator = 1
        props.ContentType = "application/json"
        props.MessageExpiryInterval = 30
        props.UserProperty = [("a", "1"), ("b", "ü")]
    sent = [
        ("iots6/dev-1/telemetry", b'{"v":1}', 1),
        ("iots6/dev-1/status", b"online", 0),
        ("iots6/dev-2/telemetry", b"z" * 70000, 1),  # remaining length needs a three-byte varint
        ("iots6/dév/ünïcode", "ā".encode(), 1),
    ]
    infos = [client.publish(topic, payload, qos, properties=props) for topic, payload, qos in sent]
    client.disconnect()  # queued after the PUBLISHes: the capture ends with it
    client.loop_stop()
    capture.close()
    dec, got = decoder(v5=v5)
    with pytest.raises(wire.WireError, match="DISCONNECT"):  # a client's DISCONNECT, as the last packet
        dec.feed(bytes(capture.data))
    expected = [
        (topic, payload, info.mid if qos else 0, qos) for (topic, payload, qos), info in zip(sent, infos, strict=True)
    ]
    assert got == expected


# --------------------------------------------------------------------------------------------------- the Consumer
class FakeBroker:
    """Not a broker: the broker side of one connection, scripted by the test (a listener on 127.0.0.1 that reads
    the CONNECT, answers ``connack`` and then sends whatever the test writes to ``conn``)."""

    def __init__(self, connack: bytes | None):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None
        self.connect_packet = b""
        self.connack = connack
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(10)
        self.connect_packet = self.conn.recv(65536)
        if self.connack is not None:
            self.conn.sendall(self.connack)

    def ready(self) -> socket.socket:
        self.thread.join(10)
        return self.conn

    def close(self):
        self.thread.join(10)
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


def _consumer(port: int, v5: bool = True, keepalive: int = 60, got=None) -> wire.Consumer:
    return wire.Consumer(
        "127.0.0.1",
        port,
        "cid",
        "user",
        "pw",
        (lambda *m: got.append(m)) if got is not None else (lambda *m: None),
        protocol=wire.PROTOCOL_5 if v5 else wire.PROTOCOL_311,
        keepalive=keepalive,
        session_expiry=604800,
        receive_maximum=8000,
    )


@pytest.mark.parametrize("v5", [True, False], ids=["v5", "v3.1.1"])
def test_connect_packet_and_session_present(v5):
    peer = FakeBroker(bytes.fromhex("20 03 01 00 00") if v5 else bytes.fromhex("20 02 01 00"))
    consumer = _consumer(peer.port, v5, keepalive=30)
    try:
        assert consumer.connect(timeout=5) is True
        peer.ready()
        if v5:
            expected = bytes.fromhex(
                "10 27"  # CONNECT, remaining length 39
                "00 04 4d 51 54 54 05 c0 00 1e"  # "MQTT", level 5, flags: user name + password, keepalive 30
                "0d 11 00 09 3a 80 21 1f 40 27 00 10 00 00"  # session expiry 7 d, receive max 8000, max packet 1 MiB
                "00 03 63 69 64 00 04 75 73 65 72 00 02 70 77"  # "cid", "user", "pw"
            )
        else:
            expected = bytes.fromhex("10 19 00 04 4d 51 54 54 04 c0 00 1e 00 03 63 69 64 00 04 75 73 65 72 00 02 70 77")
        assert peer.connect_packet == expected
        consumer.subscribe("iots6/#", packet_id=1)
        # SUBSCRIBE, packet id 1, (v5: no properties), "iots6/#", options: QoS 1
        if v5:
            expected = bytes.fromhex("82 0d 00 01 00 00 07 69 6f 74 73 36 2f 23 01")
        else:
            expected = bytes.fromhex("82 0c 00 01 00 07 69 6f 74 73 36 2f 23 01")
        assert peer.conn.recv(100) == expected
    finally:
        consumer.close()
        peer.close()


def test_connect_refused_silent_or_closed_peer():
    peer = FakeBroker(bytes.fromhex("20 03 00 86 00"))
    consumer = _consumer(peer.port)
    with pytest.raises(wire.Refused, match=r"Bad User Name or Password \(0x86\)"):
        consumer.connect(timeout=5)
    assert consumer.sock is None
    peer.close()

    peer = FakeBroker(None)  # reads CONNECT, never answers
    with pytest.raises(wire.WireError, match=r"did not answer CONNECT within 0.3 s"):
        _consumer(peer.port).connect(timeout=0.3)
    peer.close()

    peer = FakeBroker(b"")
    consumer = _consumer(peer.port)
    threading.Thread(target=lambda: peer.ready().close(), daemon=True).start()
    with pytest.raises(wire.WireError, match="closed the connection before CONNACK"):
        consumer.connect(timeout=5)
    peer.listener.close()


def _read_in_thread(consumer: wire.Consumer, stop: threading.Event):
    outcome: dict = {}

    def run():
        started = time.monotonic()
        try:
            consumer.read(stop)
            outcome["returned"] = True
        except OSError as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _recv_packet(conn: socket.socket, timeout: float) -> bytes:
    conn.settimeout(timeout)
    head = conn.recv(2)
    return head + (conn.recv(head[1]) if len(head) == 2 and head[1] else b"")


def test_keepalive_pings_and_a_silent_broker_is_detected_as_half_open():
    peer = FakeBroker(CONNACK_V5)
    consumer = _consumer(peer.port, keepalive=1)
    consumer.connect(timeout=5)
    conn = peer.ready()
    stop = threading.Event()
    thread, outcome = _read_in_thread(consumer, stop)
    try:
        # A live broker answers each PINGREQ: the connection stays up for several keepalive periods.
        answered = 0
        until = time.monotonic() + 3.5
        while time.monotonic() < until:
            packet = _recv_packet(conn, 2)
            assert packet == bytes.fromhex("c0 00")
            conn.sendall(bytes.fromhex("d0 00"))
            answered += 1
        assert answered >= 3 and thread.is_alive(), outcome
        # Now the broker goes silent (TCP still up): the reader gives up after 1.5 x keepalive of silence.
        thread.join(10)
        assert not thread.is_alive()
        error = outcome["error"]
        assert isinstance(error, wire.WireError) and "half-open" in str(error)
        silent = float(str(error).split("nothing from the broker for ")[1].split(" s")[0])
        assert silent >= 1.5  # never before 1.5 x keepalive
    finally:
        stop.set()
        thread.join(5)
        consumer.close()
        peer.close()


def test_keepalive_zero_sends_no_pings():
    peer = FakeBroker(CONNACK_V3)
    consumer = _consumer(peer.port, v5=False, keepalive=0)
    consumer.connect(timeout=5)
    conn = peer.ready()
    stop = threading.Event()
    thread, outcome = _read_in_thread(consumer, stop)
    try:
        conn.settimeout(1.2)
        with pytest.raises(TimeoutError):
            conn.recv(10)
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(5)
        consumer.close()
        peer.close()
    assert outcome.get("returned"), outcome


def test_server_keep_alive_replaces_ours():
    peer = FakeBroker(bytes.fromhex("20 06 00 00 03 13 00 02"))  # Server Keep Alive 2 s
    consumer = _consumer(peer.port, keepalive=600)
    try:
        consumer.connect(timeout=5)
        assert consumer.keepalive == 2
    finally:
        consumer.close()
        peer.close()


@pytest.mark.parametrize("v5", [True, False], ids=["v5", "v3.1.1"])
def test_oversize_announcement_ends_the_connection_before_its_body(v5):
    peer = FakeBroker(CONNACK_V5 if v5 else CONNACK_V3)
    got: list = []
    consumer = _consumer(peer.port, v5, got=got)
    consumer.connect(timeout=5)
    conn = peer.ready()
    stop = threading.Event()
    thread, outcome = _read_in_thread(consumer, stop)
    try:
        # A good message, then a PUBLISH announcing 200 MiB followed by a little of its body; the socket stays
        # open, so only the header can end the connection.
        good = bytes.fromhex("30 06 00 01 74 00" if v5 else "30 05 00 01 74") + b"ok"
        conn.sendall(good + bytes.fromhex("30 80 80 80 64 00 01 74") + b"x" * 4096)
        thread.join(10)
        assert isinstance(outcome.get("error"), wire.WireError) and "exceeds" in str(outcome["error"])
        assert got == [("t", b"ok", 0, 0)]
        consumer.close()  # what the service does after read() raised
        # v5: we say why (DISCONNECT, reason 0x95 Packet too large) before closing; 3.1.1: we just close.
        conn.settimeout(5)
        rest = b""
        while chunk := conn.recv(100):
            rest += chunk
        assert rest == (bytes.fromhex("e0 01 95") if v5 else b"")
    finally:
        stop.set()
        thread.join(5)
        consumer.close()
        peer.close()


def test_topic_overrun_sends_disconnect_malformed_and_acks_nothing():
    peer = FakeBroker(CONNACK_V5)
    got: list = []
    consumer = _consumer(peer.port, got=got)
    consumer.connect(timeout=5)
    conn = peer.ready()
    stop = threading.Event()
    thread, outcome = _read_in_thread(consumer, stop)
    try:
        conn.sendall(bytes.fromhex("32 06 00 09 74 00 05 00") + bytes.fromhex("32 06 00 01 74 00 06 00"))
        thread.join(10)
        assert "topic length runs past" in str(outcome["error"])
        conn.settimeout(5)
        assert conn.recv(100) == bytes.fromhex("e0 01 81")  # DISCONNECT: Malformed Packet; no PUBACK
        assert got == []
    finally:
        stop.set()
        thread.join(5)
        consumer.close()
        peer.close()


def test_acks_go_out_as_one_write_of_pubacks_in_order():
    ours, theirs = socket.socketpair()
    consumer = _consumer(0)
    consumer.sock = ours
    try:
        consumer.ack([1, 2, 513])
        assert theirs.recv(100) == bytes.fromhex("40 02 00 01 40 02 00 02 40 02 02 01")
    finally:
        theirs.close()
        consumer.close()


def test_a_failed_write_shuts_the_connection_for_the_reader():
    peer = FakeBroker(CONNACK_V3)
    consumer = _consumer(peer.port, v5=False)
    consumer.connect(timeout=5)
    peer.ready()
    stop = threading.Event()
    thread, outcome = _read_in_thread(consumer, stop)
    try:
        consumer.sock.settimeout(0.05)  # the broker stops reading: our writes time out ...
        consumer.keepalive = 1  # ... and are retried for one keepalive period
        with pytest.raises(OSError):
            for _ in range(100_000):
                consumer.ack(list(range(1, 8001)))
        thread.join(10)
        assert isinstance(outcome.get("error"), OSError)  # the reader saw the connection end at once
    finally:
        stop.set()
        thread.join(5)
        consumer.close()
        peer.close()
