"""The ingest's MQTT reader against a real Mosquitto: TLS (server and client certificates from ``iotctl.pki``), a
half-open connection, and a corrupted packet on the wire between a real broker and the real ingest process.

``FaultyLink`` is a TCP relay between two real ends (our reader or the ingest, and Mosquitto) that misbehaves on
command: it stops forwarding (the connection stays open: a half-open link, as when a NAT or a peer vanishes), or
rewrites one packet from the broker.  It forwards real traffic; it never answers for the broker.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from iotctl import pki
from iotctl.secretfiles import write_secret
from iots6_platform.core import contract
from iots6_platform.core.contract import Reading
from iots6_platform.ingest import wire

from .conftest import count_rows, wait_until

BASE = contract.DEFAULT_TOPIC_BASE


def split_frames(buf: bytearray) -> list[bytes]:
    """Complete MQTT packets at the front of ``buf`` (removed from it); written from the spec, not from wire.py."""
    frames = []
    while len(buf) >= 2:
        length, shift, i = 0, 0, 1
        while True:
            if i >= len(buf):
                return frames
            length |= (buf[i] & 0x7F) << shift
            shift += 7
            i += 1
            if buf[i - 1] < 0x80:
                break
        if len(buf) < i + length:
            return frames
        frames.append(bytes(buf[: i + length]))
        del buf[: i + length]
    return frames


def publish_fields(frame: bytes) -> tuple[str, int]:
    """(topic, packet id) of a PUBLISH frame."""
    i = 1
    while frame[i] & 0x80:
        i += 1
    i += 1
    topic_len = struct.unpack(">H", frame[i : i + 2])[0]
    topic = frame[i + 2 : i + 2 + topic_len].decode()
    mid = struct.unpack(">H", frame[i + 2 + topic_len : i + 4 + topic_len])[0] if frame[0] & 0x06 else 0
    return topic, mid


class FaultyLink:
    """Relay 127.0.0.x:``port`` -> 127.0.0.1:``target``, one upstream connection per client connection.

    ``framed``: split the streams into MQTT packets, record them per connection (``to_broker``/``to_client``) and
    pass each broker packet through ``rewrite(connection_index, packet) -> packet``.  ``freeze()`` stops forwarding
    on the connections open now, leaving their sockets open."""

    def __init__(self, target: int, host: str = "127.0.0.1", framed: bool = True):
        self.target = target
        self.framed = framed
        self.listener = socket.create_server((host, 0))
        self.host, self.port = host, self.listener.getsockname()[1]
        self.rewrite: Callable[[int, bytes], bytes] | None = None
        self.to_broker: list[list[bytes]] = []
        self.to_client: list[list[bytes]] = []
        self.frozen: list[threading.Event] = []
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.closing = threading.Event()
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self.threads.append(accept)

    def _accept(self):
        self.listener.settimeout(0.1)
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            index = len(self.to_broker)
            self.to_broker.append([])
            self.to_client.append([])
            frozen = threading.Event()
            self.frozen.append(frozen)
            self.sockets += [client, upstream]
            for src, dst, log, rewrite in (
                (client, upstream, self.to_broker[index], None),
                (upstream, client, self.to_client[index], True),
            ):
                t = threading.Thread(target=self._pump, args=(index, src, dst, log, rewrite, frozen), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, index, src, dst, log, rewrite, frozen):
        src.settimeout(0.05)
        buf = bytearray()
        while not self.closing.is_set():
            if frozen.is_set():
                time.sleep(0.05)
                continue
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if frozen.is_set():  # arrived after freeze(): held back for good
                continue
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            if not self.framed:
                out = data
            else:
                buf += data
                frames = split_frames(buf)
                if rewrite and self.rewrite is not None:
                    frames = [self.rewrite(index, f) for f in frames]
                log.extend(frames)
                out = b"".join(frames)
            with contextlib.suppress(OSError):
                dst.sendall(out)

    def freeze(self) -> None:
        for frozen in self.frozen:
            frozen.set()

    def close(self) -> None:
        self.closing.set()
        self.listener.close()
        for t in self.threads:
            t.join(5)
        for s in self.sockets:
            s.close()


@pytest.fixture
def link_factory():
    links: list[FaultyLink] = []

    def make(target: int, **kwargs) -> FaultyLink:
        links.append(FaultyLink(target, **kwargs))
        return links[-1]

    yield make
    for link in links:
        link.close()


def _reader(port: int, account, got: list, *, host="127.0.0.1", v5=True, keepalive=30, tls=None, cid=None):
    return wire.Consumer(
        host,
        port,
        cid or f"wire-{uuid.uuid4().hex[:8]}",
        account[0],
        account[1],
        lambda *m: got.append(m),
        protocol=wire.PROTOCOL_5 if v5 else wire.PROTOCOL_311,
        keepalive=keepalive,
        session_expiry=60,
        tls=tls,
    )


def _read_in_thread(consumer: wire.Consumer, stop: threading.Event) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run():
        try:
            consumer.read(stop)
        except OSError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _paho(port: int, account, *, ca=None, v5=True) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"pub-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
    )
    client.username_pw_set(*account)
    if ca is not None:
        client.tls_set(ca_certs=str(ca))
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert connected.wait(10), "paho publisher did not connect"
    return client


def _publish(client: paho.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(10)


# ------------------------------------------------------------------------------------------------ keepalive
def test_pingresp_keeps_an_idle_link_alive_and_a_frozen_link_is_dropped_then_nothing_is_lost(broker, link_factory):
    link = link_factory(broker.port)
    got: list = []
    cid = f"wire-ka-{uuid.uuid4().hex[:8]}"
    topic = f"{BASE}/{cid}/telemetry"
    consumer = _reader(link.port, broker.ingest, got, keepalive=1, cid=cid)
    consumer.connect()
    consumer.subscribe(topic)
    stop = threading.Event()
    thread, outcome = _read_in_thread(consumer, stop)
    wait_until(lambda: not consumer.decoder.pending_subscriptions, 5, what="SUBACK")
    publisher = _paho(broker.port, broker.publisher)
    try:
        _publish(publisher, topic, b"before")
        wait_until(lambda: got, 5, what="first message")
        consumer.ack([got[0][2]])
        time.sleep(3.0)  # idle for 3 x keepalive: only PINGREQ/PINGRESP flow, and they keep the link up
        assert thread.is_alive(), outcome
        pings = [f for f in link.to_broker[0] if f == bytes((0xC0, 0))]
        pongs = [f for f in link.to_client[0] if f == bytes((0xD0, 0))]
        assert len(pings) >= 3 and len(pongs) >= 3, (len(pings), len(pongs))

        link.freeze()  # TCP stays up both ways, nothing passes: a half-open connection
        _publish(publisher, topic, b"during")  # queued for our session by the broker
        frozen_at = time.monotonic()
        thread.join(10)
        assert not thread.is_alive(), "the reader never noticed the dead link"
        assert "half-open" in str(outcome.get("error")), outcome
        detected_after = time.monotonic() - frozen_at
        consumer.close()

        # Reconnect (the link forwards new connections): the session kept what arrived meanwhile.
        consumer = _reader(link.port, broker.ingest, got, keepalive=1, cid=cid)
        assert consumer.connect() is True
        consumer.subscribe(topic)
        stop2 = threading.Event()
        thread2, outcome2 = _read_in_thread(consumer, stop2)
        wait_until(lambda: [m for m in got if m[1] == b"during"], 10, what="message queued while half-open")
        stop2.set()
        thread2.join(5)
        assert "error" not in outcome2, outcome2
    finally:
        stop.set()
        publisher.disconnect()
        publisher.loop_stop()
        consumer.close()
    print(f"half-open link detected {detected_after:.2f} s after it froze (keepalive 1 s)")
    assert [m[1] for m in got] == [b"before", b"during"]


# ------------------------------------------------------------------------------------------------ TLS
@pytest.mark.parametrize("v5", [True, False], ids=["v5", "v3.1.1"])
def test_reader_over_tls_receives_and_acks(tls_broker, v5):
    got: list = []
    cid = f"wire-tls-{uuid.uuid4().hex[:8]}"
    topic = f"{BASE}/{cid}/telemetry"
    tls = wire.tls_context(str(tls_broker.ca.cert))
    consumer = _reader(tls_broker.tls_port, tls_broker.ingest, got, v5=v5, tls=tls, cid=cid)
    assert consumer.connect() is False
    assert isinstance(consumer.sock, ssl.SSLSocket) and consumer.sock.version() in ("TLSv1.2", "TLSv1.3")
    consumer.subscribe(topic)
    stop = threading.Event()
    thread, outcome = _read_in_thread(consumer, stop)
    wait_until(lambda: not consumer.decoder.pending_subscriptions, 5, what="SUBACK")
    publisher = _paho(tls_broker.tls_port, tls_broker.publisher, ca=tls_broker.ca.cert, v5=v5)
    try:
        _publish(publisher, topic, b'{"over":"tls"}')
        wait_until(lambda: got, 5, what="message over TLS")
        assert got == [(topic, b'{"over":"tls"}', got[0][2], 1)]
        consumer.ack([got[0][2]])  # from this thread while the reader reads: the TLS socket is shared safely
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(5)
        consumer.disconnect()
        publisher.disconnect()
        publisher.loop_stop()
    assert "error" not in outcome, outcome
    # The PUBACK arrived: the resumed session has nothing to redeliver.
    again: list = []
    consumer = _reader(tls_broker.tls_port, tls_broker.ingest, again, v5=v5, tls=tls, cid=cid)
    assert consumer.connect() is True
    stop = threading.Event()
    thread, outcome = _read_in_thread(consumer, stop)
    time.sleep(0.5)
    stop.set()
    thread.join(5)
    consumer.disconnect()
    assert again == [] and "error" not in outcome


def test_client_certificate_listener(tls_broker):
    ca = str(tls_broker.ca.cert)
    without = _reader(tls_broker.mtls_port, tls_broker.ingest, [], tls=wire.tls_context(ca))
    with pytest.raises(wire.WireError, match="TLS with 127.0.0.1|closed the connection before CONNACK"):
        without.connect(timeout=5)
    pair = tls_broker.client_cert("svc-ingest", "svc.ingest")
    consumer = _reader(
        tls_broker.mtls_port, tls_broker.ingest, [], tls=wire.tls_context(ca, str(pair.cert), str(pair.key))
    )
    try:
        assert consumer.connect(timeout=5) is False
    finally:
        consumer.disconnect()


def test_broker_certificate_must_chain_to_our_ca_and_name_the_host(tls_broker, tmp_path, link_factory):
    other_ca = pki.ensure_ca(tmp_path / "other", common_name="someone else's CA")
    stranger = _reader(tls_broker.tls_port, tls_broker.ingest, [], tls=wire.tls_context(str(other_ca.cert)))
    with pytest.raises(wire.WireError, match=r"TLS with 127\.0\.0\.1:\d+ failed: .*certificate"):
        stranger.connect(timeout=5)
    # The broker's certificate names 127.0.0.1 and localhost; reached as 127.0.0.2 it must be refused.
    link = link_factory(tls_broker.tls_port, host="127.0.0.2", framed=False)
    tls = wire.tls_context(str(tls_broker.ca.cert))
    misnamed = _reader(link.port, tls_broker.ingest, [], host="127.0.0.2", tls=tls)
    with pytest.raises(wire.WireError, match="IP address mismatch"):
        misnamed.connect(timeout=5)


def _reading(device_id: str, seq: int) -> str:
    when = datetime.now(UTC) - timedelta(minutes=5) + timedelta(seconds=seq)
    return contract.make_payload(
        Reading(when, device_id, "telemetry", seq, 21.0, 40.0, 1000.0, None, None, None, None, None)
    )


def test_ingest_service_over_tls_with_a_client_certificate(tls_broker, ingest_factory, database, tmp_path, device_id):
    pair = tls_broker.client_cert("ingest", "svc.ingest")
    worker = ingest_factory(
        INGEST_MQTT_PORT=str(tls_broker.mtls_port),
        INGEST_MQTT_USERNAME=tls_broker.ingest[0],
        INGEST_MQTT_PASSWORD_FILE=str(write_secret(tmp_path / "tls-ingest.password", tls_broker.ingest[1])),
        INGEST_MQTT_TLS_CA_FILE=str(tls_broker.ca.cert),
        INGEST_MQTT_TLS_CERT_FILE=str(pair.cert),
        INGEST_MQTT_TLS_KEY_FILE=str(pair.key),
    ).start()
    with database.connect(autocommit=True) as conn:
        conn.execute("INSERT INTO devices (device_id) VALUES (%s)", (device_id,))
    publisher = _paho(tls_broker.tls_port, tls_broker.publisher, ca=tls_broker.ca.cert)
    try:
        topic = contract.topic(BASE, device_id, contract.TELEMETRY)
        for seq in range(3):
            _publish(publisher, topic, _reading(device_id, seq).encode())
        wait_until(
            lambda: count_rows(database, "SELECT count(*) FROM sensor_data WHERE device_id = %s", (device_id,)) == 3,
            15,
            what=f"3 readings stored over TLS (log {worker.log})",
        )
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    assert " over TLS (session present" in worker.log_text()


# ------------------------------------------------------------------------------------------------ corruption
def test_corrupted_publish_disconnects_reconnects_and_loses_or_duplicates_nothing(
    broker, ingest_factory, provision, database, device_id, link_factory
):
    """A PUBLISH whose topic length overruns its packet (rewritten on the wire, on the first connection only):
    the ingest must drop the connection with DISCONNECT 0x81, acknowledge nothing from that packet on, reconnect,
    and end with every reading stored once and no dead letter."""
    link = link_factory(broker.port)
    topic = contract.topic(BASE, device_id, contract.TELEMETRY)
    seen = {"count": 0, "corrupted_mid": None}

    def corrupt(index: int, frame: bytes) -> bytes:
        if index != 0 or frame[0] >> 4 != 3 or publish_fields(frame)[0] != topic:
            return frame
        seen["count"] += 1
        if seen["count"] != 20:
            return frame
        seen["corrupted_mid"] = publish_fields(frame)[1]
        i = 1
        while frame[i] & 0x80:
            i += 1
        i += 1
        remaining = len(frame) - i
        seen["frame"] = frame[:i] + struct.pack(">H", min(0xFFFF, remaining + 100)) + frame[i + 2 :]
        return seen["frame"]

    link.rewrite = corrupt
    worker = ingest_factory(INGEST_MQTT_PORT=str(link.port)).start()
    device = provision(device_id)
    count = 60
    device.wait_acked([device.publish(topic, _reading(device_id, seq)) for seq in range(count)])
    wait_until(
        lambda: count_rows(database, "SELECT count(*) FROM sensor_data WHERE device_id = %s", (device_id,)) == count,
        30,
        what=f"{count} readings stored (log {worker.log})",
    )
    time.sleep(0.5)  # a duplicate or a late dead letter would show now
    assert seen["corrupted_mid"] is not None, "the stream was never corrupted"
    rows = (
        count_rows(database, "SELECT count(DISTINCT seq) FROM sensor_data WHERE device_id = %s", (device_id,)),
        count_rows(database, "SELECT count(*) FROM sensor_data WHERE device_id = %s", (device_id,)),
    )
    assert rows == (count, count)
    assert count_rows(database, "SELECT count(*) FROM dead_letter") == 0, "a garbage topic was dead-lettered"
    assert "malformed packet from the broker: PUBLISH topic length runs past the packet" in worker.log_text()
    assert len(link.to_broker) >= 2, "the ingest did not reconnect"

    # First connection: the ingest said why it left, and acknowledged only packets that came before the corrupt one.
    first_to_broker, first_to_client = link.to_broker[0], link.to_client[0]
    assert bytes((0xE0, 1, 0x81)) in first_to_broker
    publishes = [f for f in first_to_client if f[0] >> 4 == 3]
    corrupt_at = publishes.index(seen["frame"])
    before = {publish_fields(f)[1] for f in publishes[:corrupt_at] if f[0] & 0x06}
    acked = {struct.unpack(">H", f[2:4])[0] for f in first_to_broker if f[0] == 0x40}
    assert acked <= before, f"acknowledged on the broken connection without a good packet: {acked - before}"
