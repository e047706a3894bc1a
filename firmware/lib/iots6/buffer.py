"""The offline buffer on flash: every reading is appended here before it is sent, and removed after its PUBACK.

Layout: a folder ``queue/`` of segment files ``<n>.jsonl`` (one ``["<channel>", {payload}]`` per line, appended)
and ``queue/index.json`` = ``{"seg": <oldest segment>, "head": <byte offset of its oldest unsent line>,
"dropped": <count>, "next": <next segment number>}``.  A segment is deleted once all of it has been sent, so
nothing is ever rewritten (no compaction copies, no temp space needed) and flash wear stays one append per
reading plus one small index write per acknowledgement.

Bounds, checked on every append (the Pico W's filesystem is only ~848 KiB, shared with the firmware itself):

* ``capacity`` entries: beyond it the oldest entry is dropped and counted;
* ``max_bytes`` of segment files: beyond it the oldest whole segment (``segment_bytes``, ~30 readings) is
  dropped and its entries counted;
* ``reserve_bytes`` left free on the filesystem (``os.statvfs``), so the seq lease, the config cache and the
  boot counter can always be written: below it the oldest segments go, and when nothing of ours is left to drop
  (another file filled the flash) the append raises OSError(ENOSPC) and the caller counts the reading as dropped.

A write that fails (flash full, read-only) raises OSError and leaves the buffer usable; the next append starts a
new segment, and a half-written last line (power cut) is skipped when read.  The number of entries is recounted
from the files at boot, so a power cut between an append and an index write loses nothing.  ``dropped`` goes
out as the payload's ``dropped`` with the next message sent, then starts again from zero.
"""

import json
import os

from iots6.compat import ENOSPC, free_bytes, join, read_json, write_json

QUEUE_DIR = "queue"
INDEX_FILE = "index.json"
SUFFIX = ".jsonl"
SEGMENT_BYTES = 8192  # ~30 readings: the unit dropped when a byte bound is hit
MAX_BYTES = 196608  # 192 KiB, ~750 readings: ~12 h offline at the default 60 s interval
RESERVE_BYTES = 65536  # 16 LittleFS blocks kept free for the small state files and LittleFS's copy-on-write
CAPACITY = 1000
LEGACY_DATA = "buffer.jsonl"  # firmware 0.1's single-file buffer: its unsent lines become the oldest segment
LEGACY_INDEX = "buffer.idx"


class OfflineBuffer:
    def __init__(self, root="/", capacity=CAPACITY, max_bytes=MAX_BYTES, reserve_bytes=RESERVE_BYTES,
                 segment_bytes=SEGMENT_BYTES):
        self.root = root
        self.dir = join(root, QUEUE_DIR)
        self.index_path = self.dir + "/" + INDEX_FILE
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.reserve_bytes = reserve_bytes
        self.segment_bytes = segment_bytes
        self.segs = []  # [number, size in bytes, unsent lines], oldest first
        self.head = 0
        self.count = 0
        self.bytes = 0
        self.dropped = 0
        self.next_num = 0
        self.tail_clean = True  # False: the newest segment may end in a half line; the next append starts a new one
        self.error = None  # the last flash error (an OSError), None while writes succeed
        self._peeked = None  # length of the line peek() returned, so pop() need not read it again
        try:
            self._load()
        except OSError as exc:  # unreadable flash: start empty, appends will tell whether it can be written
            self.error = exc

    # ------------------------------------------------------------------ boot

    def _path(self, num):
        return "%s/%d%s" % (self.dir, num, SUFFIX)

    def _load(self):
        try:
            os.mkdir(self.dir)
        except OSError:
            pass  # exists (or the flash is read-only: reading may still work)
        numbers = []
        for name in os.listdir(self.dir):  # listdir, not ilistdir: the simulator runs this under CPython
            if name.endswith(SUFFIX) and name[: -len(SUFFIX)].isdigit():
                numbers.append(int(name[: -len(SUFFIX)]))
        numbers.sort()
        self._migrate_legacy(numbers)
        index = read_json(self.index_path, {}) or {}
        if not isinstance(index, dict):
            index = {}
        first = index.get("seg", 0)
        head = index.get("head", 0)
        self.dropped = index.get("dropped", 0) if isinstance(index.get("dropped"), int) else 0
        nxt = index.get("next", 0)
        self.next_num = max(nxt if isinstance(nxt, int) else 0, (numbers[-1] + 1) if numbers else 0)
        for num in numbers:
            if num < first:  # fully sent, but deleting it was cut short: finish the job
                self._remove(self._path(num))
                continue
            start = head if num == first and isinstance(head, int) else 0
            size, lines, clean = self._scan(self._path(num), start)
            if start > size:  # an index from another file: replay it all (duplicates beat loss)
                start = 0
                size, lines, clean = self._scan(self._path(num), 0)
            if not self.segs:
                self.head = start
            self.segs.append([num, size, lines])
            self.bytes += size
            self.count += lines
            self.tail_clean = clean
        while self.count > self.capacity:
            self._drop_entry()

    def _migrate_legacy(self, numbers):
        old = join(self.root, LEGACY_DATA)
        try:
            os.stat(old)
        except OSError:
            return
        index = read_json(join(self.root, LEGACY_INDEX), {}) or {}
        num = numbers[0] - 1 if numbers else 0
        if num < 0:
            return  # cannot order it before segment 0; leave it (never reached in practice)
        os.rename(old, self._path(num))
        numbers.insert(0, num)
        write_json(self.index_path, {"seg": num, "head": index.get("head", 0) if isinstance(index, dict) else 0,
                                     "dropped": index.get("dropped", 0) if isinstance(index, dict) else 0,
                                     "next": numbers[-1] + 1})
        self._remove(join(self.root, LEGACY_INDEX))

    def _scan(self, path, start):
        """(file size, complete lines after ``start``, whether the file ends with a complete line)."""
        lines = 0
        clean = True
        size = 0
        try:
            size = os.stat(path)[6]
            with open(path, "rb") as f:
                f.seek(start)
                while True:
                    line = f.readline()
                    if not line:
                        break
                    if line[-1:] != b"\n":
                        clean = False  # power cut in the middle of an append
                        break
                    lines += 1
        except OSError:
            pass
        return size, lines, clean

    # ------------------------------------------------------------------ bookkeeping

    def _remove(self, path):
        try:
            os.remove(path)
        except OSError:
            pass

    def _save_index(self):
        first = self.segs[0][0] if self.segs else self.next_num
        write_json(self.index_path, {"seg": first, "head": self.head, "dropped": self.dropped,
                                     "next": self.next_num})

    def _try_save_index(self):
        try:
            self._save_index()
        except OSError as exc:  # a reboot would then resend a few entries: duplicates, never loss
            self.error = exc

    def _line_at_head(self):
        """The bytes of the oldest line (may lack its newline if a power cut cut it short)."""
        with open(self._path(self.segs[0][0]), "rb") as f:
            f.seek(self.head)
            return f.readline()

    def _advance(self, nbytes):
        """Move past ``nbytes`` of the oldest segment and record it in the index; a segment used up is deleted
        (index first), except the newest while it has room: appends go on into it (fewer files created)."""
        seg = self.segs[0]
        self.head += nbytes
        self._peeked = None
        unsent = self.head < seg[1] and seg[2] > 0
        if unsent or (len(self.segs) == 1 and self.tail_clean and seg[1] < self.segment_bytes):
            self._try_save_index()
            return
        self.segs.pop(0)
        self.bytes -= seg[1]
        self.head = 0
        if not self.segs:
            self.tail_clean = True
        self._try_save_index()  # before the delete: a power cut in between must not replay the segment
        self._remove(self._path(seg[0]))

    def _drop_entry(self):
        line = self._line_at_head()
        seg = self.segs[0]
        seg[2] -= 1
        self.count -= 1
        self.dropped += 1
        self._advance(len(line) if line else seg[1] - self.head)

    def _drop_segment(self):
        seg = self.segs.pop(0)
        self.count -= seg[2]
        self.dropped += seg[2]
        self.bytes -= seg[1]
        self.head = 0
        self._peeked = None
        if not self.segs:
            self.tail_clean = True
        self._try_save_index()
        self._remove(self._path(seg[0]))

    def _free(self):
        return free_bytes(self.root)

    # ------------------------------------------------------------------ API

    def __len__(self):
        return self.count

    def append(self, channel, payload):
        """Store one message (channel name, payload dict) durably. Raises OSError when it cannot be stored
        (the caller counts it as dropped); older entries may be dropped (and counted) to make room."""
        line = (json.dumps([channel, payload]) + "\n").encode()
        n = len(line)
        while self.count >= self.capacity and self.count > 0:
            self._drop_entry()
        while len(self.segs) > 1 and self.bytes + n > self.max_bytes:
            self._drop_segment()
        free = self._free()
        while free is not None and free - n < self.reserve_bytes and self.segs:
            self._drop_segment()
            free = self._free()
        if free is not None and free - n < self.reserve_bytes:
            raise OSError(ENOSPC)  # the flash is full of other files: nothing of ours left to drop
        seg = self.segs[-1] if self.segs else None
        if seg is None or not self.tail_clean or seg[1] + n > self.segment_bytes:
            try:
                os.mkdir(self.dir)  # gone, or never made (a full flash at boot)
            except OSError:
                pass
            seg = [self.next_num, 0, 0]
            self.next_num += 1
            self.segs.append(seg)
            self.tail_clean = True
            if len(self.segs) == 1:
                self.head = 0
        path = self._path(seg[0])
        try:
            with open(path, "ab") as f:
                f.write(line)
        except OSError as exc:
            self.error = exc
            self.tail_clean = False  # whatever reached the file is not a complete line
            try:
                size = os.stat(path)[6]
            except OSError:
                size = seg[1]
            self.bytes += size - seg[1]
            seg[1] = size
            if seg[1] == 0 and seg[2] == 0:
                self.segs.pop()
                self._remove(path)
            raise
        seg[1] += n
        seg[2] += 1
        self.bytes += n
        self.count += 1
        self.error = None

    def peek(self):
        """``(channel, payload dict)`` of the oldest message, or None when empty.  Unreadable lines (a half
        written line, garbage) are skipped and counted as dropped."""
        while self.count > 0:
            line = self._line_at_head()
            if line[-1:] != b"\n":  # a power-cut fragment at the end of a segment: nothing more in this one
                seg = self.segs[0]
                self.count -= seg[2]
                self.dropped += seg[2]
                seg[2] = 0
                self._advance(seg[1] - self.head)
                continue
            try:
                channel, payload = json.loads(line)
                if isinstance(channel, str) and isinstance(payload, dict):
                    self._peeked = len(line)
                    return channel, payload
            except (ValueError, TypeError):
                pass
            self._drop_entry()
        return None

    def pop(self):
        """Forget the oldest message (call after its PUBACK)."""
        if self.count == 0:
            return
        n = self._peeked
        if n is None:
            n = len(self._line_at_head())
        self.segs[0][2] -= 1
        self.count -= 1
        self._advance(n)

    def count_drop(self, n=1):
        """Count readings that never reached the buffer (flash full, no seq lease, no clock at all)."""
        self.dropped += n
        self._try_save_index()

    def sent(self):
        """A message went out with the drop count: start counting drops again from zero."""
        if self.dropped:
            self.dropped = 0
            self._try_save_index()

    def bytes_used(self):
        return self.bytes
