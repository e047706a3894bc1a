# Offline buffer, seq persistence and payload shape, on the interpreter's filesystem standing in for flash.
import json
import os

from fakeflash import FakeFlash
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


def test_buffer_deletes_sent_segments_and_reuses_the_newest():
    root = fresh_root()
    b = OfflineBuffer(root, capacity=100, segment_bytes=200)
    for i in range(20):
        b.append("telemetry", {"seq": i, "pad": "x" * 20})  # ~57 bytes a line: 3 lines a segment
    per = b.segs[0][2]
    files = sorted(f for f in os.listdir(root + "/queue") if f.endswith(".jsonl"))
    assert per == 3 and len(files) == 7, (per, files)
    for _ in range(15):
        b.pop()
    files = sorted(f for f in os.listdir(root + "/queue") if f.endswith(".jsonl"))
    assert files == ["5.jsonl", "6.jsonl"], files  # what was sent is gone, nothing was rewritten
    assert [OfflineBuffer(root, 100, segment_bytes=200).peek()[1]["seq"]] == [15]
    for _ in range(5):
        b.pop()
    assert len(b) == 0 and b.bytes_used() <= 200
    b.append("telemetry", {"seq": 20})  # the drained newest segment is appended to, not a new file
    files = sorted(f for f in os.listdir(root + "/queue") if f.endswith(".jsonl"))
    assert files == ["6.jsonl"] and b.peek()[1]["seq"] == 20, files


def test_buffer_is_bounded_by_bytes():
    root = fresh_root()
    b = OfflineBuffer(root, capacity=10000, max_bytes=2000, segment_bytes=500)
    line = len(b'["telemetry", {"seq": 100, "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}]\n')
    for i in range(1000):
        b.append("telemetry", {"seq": i, "pad": "x" * 30})
        assert b.bytes_used() <= 2000
    files = [f for f in os.listdir(root + "/queue") if f.endswith(".jsonl")]
    assert sum(os.stat(root + "/queue/" + f)[6] for f in files) == b.bytes_used() <= 2000
    assert len(b) + b.dropped == 1000 and len(b) >= 2000 // line - 500 // line, (len(b), b.dropped)
    assert b.peek()[1]["seq"] == b.dropped  # the oldest kept is the one after the last dropped


def test_buffer_keeps_the_reserve_free_and_refuses_when_others_fill_the_flash():
    flash = FakeFlash()
    root = flash.mount_at("/storage%d" % flash.blocks)
    flash.fill("firmware.bin", 600 * 1024)
    b = OfflineBuffer(root, capacity=10000, max_bytes=10**6, reserve_bytes=64 * 1024, segment_bytes=8192)
    n = 0
    while n < 4000:
        b.append("telemetry", {"seq": n, "pad": "y" * 200})
        n += 1
        assert flash.free_bytes() >= 64 * 1024 - 8192, flash.free_bytes()
    assert b.dropped > 0 and len(b) + b.dropped == n
    flash.fill_up("user.log")  # someone else takes what was left: ours shrinks to give the reserve back
    b.append("telemetry", {"seq": n})
    assert flash.free_bytes() >= 64 * 1024 - 8192 and len(b) + b.dropped == n + 1
    while b.peek() is not None:  # everything of ours is sent
        b.pop()
    flash.fill_up("user.log")
    try:
        b.append("telemetry", {"seq": 0})
    except OSError as exc:
        assert exc.args[0] == 28  # ENOSPC: nothing of ours is left to drop
    else:
        raise AssertionError("appended to a full flash")
    flash.remove_file("user.log")
    b.append("telemetry", {"seq": 1})
    assert b.peek()[1]["seq"] == 1


def test_buffer_on_a_read_only_flash_raises_and_recovers():
    flash = FakeFlash()
    root = flash.mount_at("/storage-ro")
    b = OfflineBuffer(root)
    b.append("telemetry", {"seq": 1})
    flash.read_only = True
    try:
        b.append("telemetry", {"seq": 2})
    except OSError as exc:
        assert exc.args[0] == 30
    else:
        raise AssertionError("wrote to a read-only flash")
    assert OfflineBuffer(root).peek() == ("telemetry", {"seq": 1})  # reading still works
    flash.read_only = False
    b.append("telemetry", {"seq": 3})
    out = []
    while b.peek() is not None:
        out.append(b.peek()[1]["seq"])
        b.pop()
    assert out == [1, 3], out


def test_buffer_takes_over_firmware_0_1s_single_file():
    root = fresh_root()
    with open(root + "/buffer.jsonl", "w") as f:
        f.write('["telemetry", {"seq": 0}]\n["telemetry", {"seq": 1}]\n["event", {"seq": 2}]\n')
    with open(root + "/buffer.idx", "w") as f:
        f.write(json.dumps({"head": len('["telemetry", {"seq": 0}]\n'), "dropped": 4}))
    b = OfflineBuffer(root)
    assert len(b) == 2 and b.dropped == 4
    assert b.peek() == ("telemetry", {"seq": 1})
    assert "buffer.jsonl" not in os.listdir(root) and "buffer.idx" not in os.listdir(root)


def test_seq_survives_a_full_flash():
    flash = FakeFlash()
    root = flash.mount_at("/storage-seq")
    s = SeqCounter(root, every=5)
    used = [s.next() for _ in range(7)]
    flash.fill_up("user.log")
    s2 = SeqCounter(root, every=5)  # boots: no lease can be written, but no exception either
    try:
        s2.next()
    except OSError:
        pass
    else:
        raise AssertionError("numbered without a lease")
    flash.remove_file("user.log")
    assert s2.next() > max(used)


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
