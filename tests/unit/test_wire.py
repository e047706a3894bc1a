"""The ingest's MQTT reader on crafted byte streams: packets split at every byte, v5 properties, QoS 0 and 1,
a refused SUBACK and a DISCONNECT from the broker. (The broker side is a socket pair fed by the test; the real
broker is exercised by tests/integration/test_ingest.py and test_no_loss.py.)"""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from services.ingest import wire


def _publish(topic: str, payload: bytes, mid: int | None, v5: bool, props: bytes = b"") -> bytes:
    qos = 1 if mid is not None else 0
    body = wire._string(topic) + (struct.pack("!H", mid) if mid is not None else b"")
    if v5:
        body += wire._varint(len(props)) + props
    return wire._packet(0x30 | (qos << 1), body + payload)


def _reader(v5: bool = True):
    got: list[tuple[str, bytes, int, int]] = []
    ours, theirs = socket.socketpair()
    consumer = wire.Consumer(
        "unused",
        0,
        "c",
        "u",
        "p",
        lambda *m: got.append(m),
        protocol=wire.PROTOCOL_5 if v5 else wire.PROTOCOL_311,
        keepalive=60,
    )
    consumer.sock = ours
    consumer.last_send = float("inf")  # no keepalive pings in these tests
    return consumer, theirs, got


def _run(consumer, feed: bytes, chunk: int, theirs) -> BaseException | None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def read():
        try:
            consumer.read(stop)
        except OSError as exc:
            errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    for i in range(0, len(feed), chunk):
        theirs.sendall(feed[i : i + chunk])
    theirs.close()  # end of stream: the reader raises "closed the connection" once it has parsed everything
    thread.join(10)
    consumer.close()
    assert not thread.is_alive()
    return errors[0] if errors else None


@pytest.mark.parametrize("v5", [True, False], ids=["v5", "v3.1.1"])
@pytest.mark.parametrize("chunk", [1, 3, 7, 4096])
def test_packets_split_anywhere_are_parsed_in_order(v5, chunk):
    consumer, theirs, got = _reader(v5)
    big = b"x" * 300  # remaining length needs two bytes of varint
    props = bytes((0x01, 1)) + bytes((0x03,)) + wire._string("application/json")  # payload format, content type
    feed = (
        _publish("iots6/a/telemetry", b'{"seq":1}', 1, v5, props if v5 else b"")
        + wire._packet(0xD0, b"")  # PINGRESP: ignored
        + _publish("iots6/b/status", b"online", None, v5)
        + _publish("iots6/c/telemetry", big, 65535, v5)
    )
    error = _run(consumer, feed, chunk, theirs)
    assert isinstance(error, wire.WireError) and "closed" in str(error)
    assert got == [
        ("iots6/a/telemetry", b'{"seq":1}', 1, 1),
        ("iots6/b/status", b"online", 0, 0),
        ("iots6/c/telemetry", big, 65535, 1),
    ]


def test_acks_go_out_as_one_write_of_pubacks_in_order():
    consumer, theirs, _ = _reader()
    consumer.ack([1, 2, 513])
    try:
        assert theirs.recv(100) == bytes((0x40, 2, 0, 1, 0x40, 2, 0, 2, 0x40, 2, 2, 1))
    finally:
        theirs.close()
        consumer.close()


def test_refused_subscription_and_broker_disconnect_end_the_connection():
    consumer, theirs, _ = _reader()
    suback_refused = wire._packet(0x90, struct.pack("!H", 1) + b"\x00" + bytes((0x87,)))
    error = _run(consumer, suback_refused, 4096, theirs)
    assert isinstance(error, wire.Refused) and "0x87" in str(error)

    consumer, theirs, _ = _reader()
    error = _run(consumer, wire._packet(0xE0, bytes((0x8E, 0))), 4096, theirs)  # session taken over
    assert isinstance(error, wire.WireError) and "0x8e" in str(error)


def test_malformed_length_is_a_protocol_error():
    consumer, theirs, _ = _reader()
    error = _run(consumer, bytes((0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01)), 4096, theirs)
    assert isinstance(error, wire.WireError) and "malformed" in str(error)
