"""Property-based tests of the ingest's MQTT decoder (``iots6_platform.ingest.wire.Decoder``), with hypothesis.

Inputs come from an encoder written here from the specification (not the module's), as streams of valid packets,
those streams mutated (bytes flipped, cut, inserted, dropped), and plain random bytes; each fed in random chunks.
What is checked, against a reference decoder also written here (slow, one rule per line of the specification):

* the decoder never hangs (hypothesis' deadline) and raises nothing but ``WireError``;
* it never returns a packet that was not there: its messages are exactly the reference's up to the first bad packet;
* it fails exactly when the reference finds a bad packet, and never waits on a packet it must refuse.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from iots6_platform.ingest import wire

MAX_PACKET = 4096  # small, so oversize announcements are common in random input

# ------------------------------------------------------------------------------------------ independent encoder


def enc_varint(value: int) -> bytes:
    out = []
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def enc_str(raw: bytes) -> bytes:
    return struct.pack(">H", len(raw)) + raw


def frame(first: int, body: bytes) -> bytes:
    return bytes([first]) + enc_varint(len(body)) + body


# v5 PUBLISH properties a broker may send, encoded: (identifier, value bytes)
_prop_values = st.one_of(
    st.tuples(st.just(0x01), st.integers(0, 1).map(lambda v: bytes([v]))),
    st.tuples(st.just(0x02), st.integers(0, 2**32 - 1).map(lambda v: struct.pack(">I", v))),
    st.tuples(st.just(0x03), st.text(max_size=12).map(lambda t: enc_str(t.encode()))),
    st.tuples(st.just(0x08), st.text(max_size=12).map(lambda t: enc_str(t.encode()))),
    st.tuples(st.just(0x09), st.binary(max_size=12).map(enc_str)),
    st.tuples(st.just(0x0B), st.integers(1, 268_435_455).map(enc_varint)),
    st.tuples(
        st.just(0x26),
        st.tuples(st.text(max_size=6), st.text(max_size=6)).map(
            lambda kv: enc_str(kv[0].encode()) + enc_str(kv[1].encode())
        ),
    ),
)


@st.composite
def publish_props(draw) -> bytes:
    chosen = draw(st.lists(_prop_values, max_size=4))
    seen: set[int] = set()
    block = b""
    for ident, value in chosen:
        if ident in seen and ident not in (0x26, 0x0B):
            continue
        seen.add(ident)
        block += bytes([ident]) + value
    return enc_varint(len(block)) + block


@st.composite
def publish(draw, v5: bool) -> bytes:
    qos = draw(st.integers(0, 1))
    topic = draw(st.text(min_size=1, max_size=20)).encode()
    body = enc_str(topic)
    if qos:
        body += struct.pack(">H", draw(st.integers(1, 65535)))
    if v5:
        body += draw(publish_props())
    body += draw(st.binary(max_size=200))
    retain = draw(st.integers(0, 1))
    dup = draw(st.integers(0, 1)) if qos else 0  # DUP only on QoS 1 (a redelivery)
    first = 0x30 | (dup << 3) | (qos << 1) | retain
    return frame(first, body)


def packet(v5: bool):
    control = [st.just(bytes([0xD0, 0]))]  # PINGRESP
    if v5:
        control.append(st.sampled_from([0x00, 0x8B, 0x8E]).map(lambda code: frame(0xE0, bytes([code]))))
    return st.one_of(publish(v5), *control)


@st.composite
def mutated(draw, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["flip", "cut", "insert", "drop"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if how == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif how == "cut":
            del data[at:]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=6))
        elif data:
            del data[at : at + draw(st.integers(1, 6))]
    return bytes(data)


@st.composite
def stream(draw):
    v5 = draw(st.booleans())
    kind = draw(st.sampled_from(["valid", "mutated", "random"]))
    if kind == "random":
        data = draw(st.binary(max_size=400))
    else:
        data = b"".join(draw(st.lists(packet(v5), max_size=6)))
        if kind == "mutated":
            data = draw(mutated(data))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return v5, kind, data, chunks


# ------------------------------------------------------------------------------------------ reference decoder

_TYPES = {
    0x01: "byte",
    0x02: "u32",
    0x03: "utf8",
    0x08: "utf8",
    0x09: "bin",
    0x0B: "varint",
    0x11: "u32",
    0x12: "utf8",
    0x13: "u16",
    0x15: "utf8",
    0x16: "bin",
    0x17: "byte",
    0x18: "u32",
    0x19: "byte",
    0x1A: "utf8",
    0x1C: "utf8",
    0x1F: "utf8",
    0x21: "u16",
    0x22: "u16",
    0x23: "u16",
    0x24: "byte",
    0x25: "byte",
    0x26: "pair",
    0x27: "u32",
    0x28: "byte",
    0x29: "byte",
    0x2A: "byte",
}
_IN_PUBLISH = {0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x26}  # no topic alias: we announce a maximum of 0


class Bad(Exception):
    pass


def ref_varint(data: bytes, i: int, end: int) -> tuple[int | None, int]:
    """(value, next) or (None, i) if the bytes stop before the integer does; Bad after 4 continuation bytes."""
    value = 0
    for n in range(4):
        if i + n >= end:
            return None, i
        value += (data[i + n] & 0x7F) * 128**n
        if data[i + n] < 0x80:
            return value, i + n + 1
    raise Bad("varint")


def ref_props(block: bytes) -> None:
    i, seen = 0, set()
    while i < len(block):
        ident = block[i]
        i += 1
        if ident not in _TYPES or ident not in _IN_PUBLISH:
            raise Bad("property")
        if ident in seen and ident not in (0x26, 0x0B):
            raise Bad("duplicate")
        seen.add(ident)
        kind = _TYPES[ident]
        if kind == "varint":
            value, i = ref_varint(block, i, len(block))
            if value is None:
                raise Bad("varint property")
            continue
        fixed = {"byte": 1, "u16": 2, "u32": 4}.get(kind)
        if fixed is None:
            strings = 2 if kind == "pair" else 1
            for _ in range(strings):
                if i + 2 > len(block):
                    raise Bad("string length")
                i += 2 + struct.unpack(">H", block[i : i + 2])[0]
                if i > len(block):
                    raise Bad("string")
        else:
            i += fixed
            if i > len(block):
                raise Bad("fixed")


def ref_publish(first: int, body: bytes, v5: bool) -> tuple[str, bytes, int, int]:
    qos, dup = (first >> 1) & 3, first & 0x08
    if qos == 3 or qos == 2 or (dup and qos == 0) or len(body) < 2:
        raise Bad("publish header")
    topic_len = struct.unpack(">H", body[:2])[0]
    i = 2 + topic_len
    if i > len(body):
        raise Bad("topic")
    topic = body[2:i]
    mid = 0
    if qos:
        if i + 2 > len(body):
            raise Bad("packet id")
        mid = struct.unpack(">H", body[i : i + 2])[0]
        if mid == 0:
            raise Bad("mid 0")
        i += 2
    if v5:
        length, j = ref_varint(body, i, len(body))
        if length is None or j + length > len(body):
            raise Bad("properties")
        ref_props(body[j : j + length])
        i = j + length
    if not topic:
        raise Bad("empty topic")
    return topic.decode("utf-8", "replace"), body[i:], mid, qos


def reference(data: bytes, v5: bool) -> tuple[list, str]:
    """(messages, "complete" | "incomplete" | "bad") for a stream that follows a CONNACK."""
    out: list = []
    i = 0
    try:
        while i < len(data):
            if len(data) - i < 2:
                return out, "incomplete"
            length, start = ref_varint(data, i + 1, len(data))
            if length is None:
                return out, "incomplete"
            if length > MAX_PACKET:
                raise Bad("too large")
            if start + length > len(data):
                return out, "incomplete"
            first, body = data[i], data[start : start + length]
            if first >> 4 == 3:
                out.append(ref_publish(first, body, v5))
            elif first == 0xD0 and not body:
                pass
            else:  # a SUBACK we never asked for, DISCONNECT, or anything a server may not send: the end
                raise Bad("control")
            i = start + length
    except Bad:
        return out, "bad"
    return out, "complete"


# ------------------------------------------------------------------------------------------ properties


def run_decoder(v5: bool, chunks: list[bytes]) -> tuple[list, bool]:
    got: list = []
    dec = wire.Decoder(v5, lambda *m: got.append(m), MAX_PACKET)
    dec.feed(bytes([0x20, 3, 0, 0, 0]) if v5 else bytes([0x20, 2, 0, 0]))
    try:
        for chunk in chunks:
            dec.feed(chunk)
    except wire.WireError:  # the only exception allowed; any other fails the test
        return got, True
    return got, False


@settings(max_examples=600, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(stream())
def test_decoder_agrees_with_the_reference_on_any_input(case):
    v5, kind, data, chunks = case
    got, failed = run_decoder(v5, chunks)
    expected, outcome = reference(data, v5)
    event(f"{kind}: {outcome}")
    assert got == expected, (kind, data.hex())
    assert failed == (outcome == "bad"), (kind, outcome, data.hex())


@settings(max_examples=300, deadline=1000)
@given(st.booleans(), st.data())
def test_valid_streams_come_out_whole_however_they_are_split(v5, data):
    packets = data.draw(st.lists(publish(v5), min_size=1, max_size=8))
    stream_bytes = b"".join(packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream_bytes)), max_size=10)))
    chunks = [stream_bytes[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream_bytes)], strict=True)]
    got, failed = run_decoder(v5, chunks)
    expected, outcome = reference(stream_bytes, v5)
    assert outcome == "complete" and not failed
    assert got == expected and len(got) == len(packets)


@settings(max_examples=200, deadline=1000)
@given(st.booleans(), st.integers(MAX_PACKET + 1, 268_435_455), st.binary(max_size=64))
def test_oversize_is_refused_from_the_header_whatever_follows(v5, length, tail):
    header = bytes([0x30]) + enc_varint(length)
    got, failed = run_decoder(v5, [header, tail])
    assert failed and got == []
