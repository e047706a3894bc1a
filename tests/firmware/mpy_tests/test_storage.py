# Offline buffer, seq persistence and payload shape, on the interpreter's filesystem standing in for flash.
import json
import os

from iots6 import contract
from iots6.buffer import OfflineBuffer
from iots6.seq import SeqCounter

from mpytest import fresh_root, run


def test_buffer_replays_oldest_first():
    b = OfflineBuffer(fresh_root(), capacity=10)
    for i in range(3):
        b.append("telemetry", {"seq": i})
    out = []
    while b.peek() is not None:
        out.append(b.peek()[1]["seq"])
        b.pop()
    assert out == [0, 1, 2], out
    assert len(b) == 0


def test_buffer_bound_drops_oldest_and_counts():
    b = OfflineBuffer(fresh_root(), capacity=5)
    for i in range(8):
        b.append("telemetry", {"seq": i})
    assert len(b) == 5
    assert b.dropped == 3
    assert b.peek() == ("telemetry", {"seq": 3})
    b.pop()
    b.sent()
    assert b.dropped == 0


def test_buffer_survives_reboot():
    root = fresh_root()
    b = OfflineBuffer(root, capacity=4)
    for i in range(6):
        b.append("event" if i % 2 else "telemetry", {"seq": i})
    b.pop()  # seq 2 was sent
    del b
    again = OfflineBuffer(root, capacity=4)  # a new object over the same files = a reboot
    assert len(again) == 3
    assert again.dropped == 2
    items = []
    while again.peek() is not None:
        items.append(again.peek())
        again.pop()
    assert items == [("event", {"seq": 3}), ("telemetry", {"seq": 4}), ("event", {"seq": 5})], items


def test_buffer_discards_half_written_line():
    root = fresh_root()
    b = OfflineBuffer(root, capacity=10)
    b.append("telemetry", {"seq": 1})
    with open(root + "/buffer.jsonl", "ab") as f:
        f.write(b'["telemetry", {"se')  # power cut in the middle of an append
    again = OfflineBuffer(root, capacity=10)
    assert len(again) == 1
    again.append("telemetry", {"seq": 2})
    assert [again.peek()[1]["seq"]] == [1]
    again.pop()
    assert again.peek()[1]["seq"] == 2


def test_buffer_compacts_sent_part():
    from iots6 import buffer as bufmod

    root = fresh_root()
    old = bufmod.COMPACT_BYTES
    bufmod.COMPACT_BYTES = 200
    try:
        b = OfflineBuffer(root, capacity=100)
        for i in range(20):
            b.append("telemetry", {"seq": i, "pad": "x" * 20})
        for _ in range(15):
            b.pop()
        full = 20 * len(b'["telemetry", {"seq": 10, "pad": "xxxxxxxxxxxxxxxxxxxx"}]\n')
        assert os.stat(root + "/buffer.jsonl")[6] < full // 2  # the sent lines were cut away
        assert [OfflineBuffer(root, 100).peek()[1]["seq"]] == [15]
    finally:
        bufmod.COMPACT_BYTES = old


def test_seq_never_repeats_across_reboots():
    root = fresh_root()
    s = SeqCounter(root, every=5)
    used = [s.next() for _ in range(7)]
    assert used == list(range(7))
    s2 = SeqCounter(root, every=5)  # reboot without a clean shutdown
    n = s2.next()
    assert n > max(used), (n, used)
    assert n - max(used) <= 5  # at most one lease skipped
    s3 = SeqCounter(root, every=5)
    assert s3.next() > n


def test_seq_writes_only_every_n():
    root = fresh_root()
    s = SeqCounter(root, every=10)
    before = open(root + "/seq.json").read()
    for _ in range(9):
        s.next()
    assert open(root + "/seq.json").read() == before  # no write inside the lease
    s.next()
    s.next()
    assert json.loads(open(root + "/seq.json").read())["limit"] == 20


def test_payload_shape():
    p = contract.build_payload(
        "pico-01",
        42,
        contract.format_ts(1735689600123),
        {"temperature": 21.456, "humidity": 40.0, "pressure": None, "motion": True, "switch": False},
        rssi=-60,
        uptime_s=12,
        fw="iots6-fw/0.1.0",
        dropped=3,
    )
    assert p["v"] == 1 and p["device_id"] == "pico-01" and p["seq"] == 42
    assert p["ts"] == "2025-01-01T00:00:00.123Z", p["ts"]
    assert p["temperature"] == 21.46 and p["pressure"] is None
    assert p["motion"] is True and p["switch"] is False
    assert p["rssi"] == -60 and p["uptime_s"] == 12 and p["dropped"] == 3
    assert "event" not in p
    for name, value in p.items():
        kind = contract.FIELDS[name][0]
        if value is None:
            continue
        ok = {"integer": int, "number": float, "string": str, "boolean": bool}[kind]
        assert isinstance(value, ok), (name, value)
    e = contract.build_payload("pico-01", 43, "2025-01-01T00:00:00.000Z", {}, event="motion")
    assert e["event"] == "motion" and e["temperature"] is None and e["motion"] is None
    assert "dropped" not in e


def test_payload_out_of_range_becomes_null():
    p = contract.build_payload("d", 1, "2025-01-01T00:00:00.000Z", {"temperature": 400.0, "humidity": -3})
    assert p["temperature"] is None and p["humidity"] is None


def test_topics():
    assert contract.topic("iots6", "pico-01", "telemetry") == "iots6/pico-01/telemetry"
    for bad in ("", "a/b", "x" * 65, "sp ace", "+"):
        try:
            contract.topic("iots6", bad, "telemetry")
        except ValueError:
            continue
        raise AssertionError("accepted device id %r" % bad)


run(globals())
