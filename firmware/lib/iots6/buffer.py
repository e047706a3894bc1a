"""Bounded offline buffer on flash: readings that could not be sent wait here and are replayed oldest-first.

Layout: ``buffer.jsonl`` holds one ``["<channel>", {payload}]`` per line, appended; ``buffer.idx`` holds
``{"head": <byte offset of the oldest unsent line>, "dropped": <count>}``.  Sending the oldest entry only moves
``head``; the file is rewritten (compacted) when the sent part grows large or the buffer empties.  The number of
entries is recounted from the file at boot, so a power cut between an append and an index write loses nothing;
a half-written last line is discarded.  When full, the oldest entry is dropped and counted; the count goes out
as ``dropped`` with the next message that is sent, then starts again from zero.

Flash wear: one append per reading while offline (LittleFS spreads writes over the whole 848 KiB filesystem).
"""

import json
import os

from iots6.compat import join, read_json, write_json

DATA_FILE = "buffer.jsonl"
INDEX_FILE = "buffer.idx"
COMPACT_BYTES = 16384  # rewrite the file once this much of it is already sent


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


class OfflineBuffer:
    def __init__(self, root="/", capacity=200):
        self.path = join(root, DATA_FILE)
        self.index_path = join(root, INDEX_FILE)
        self.capacity = capacity
        index = read_json(self.index_path, {}) or {}
        self.head = index.get("head", 0) if isinstance(index, dict) else 0
        self.dropped = index.get("dropped", 0) if isinstance(index, dict) else 0
        self.count = 0
        self._recount()

    # ------------------------------------------------------------------ bookkeeping

    def _recount(self):
        size = _size(self.path)
        if self.head > size:
            self.head = 0  # index from an older file: replay everything (duplicates beat loss)
        count = 0
        clean = True
        try:
            with open(self.path, "rb") as f:
                f.seek(self.head)
                while True:
                    line = f.readline()
                    if not line:
                        break
                    if not line.endswith(b"\n"):
                        clean = False  # power cut in the middle of an append
                        break
                    count += 1
        except OSError:
            pass
        self.count = count
        if not clean or count > self.capacity:
            self._compact()
        while self.count > self.capacity:
            self._drop_oldest()

    def _save_index(self):
        write_json(self.index_path, {"head": self.head, "dropped": self.dropped})

    def _compact(self):
        """Rewrite the file with only the unsent, complete lines."""
        tmp = self.path + ".new"
        kept = 0
        with open(tmp, "wb") as out:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self.head)
                    while True:
                        line = f.readline()
                        if not line or not line.endswith(b"\n"):
                            break
                        out.write(line)
                        kept += 1
            except OSError:
                pass
        # Index first: a power cut before the rename then replays some sent lines again instead of losing any.
        self.head = 0
        self._save_index()
        try:
            os.remove(self.path)
        except OSError:
            pass
        os.rename(tmp, self.path)
        self.count = kept

    def _oldest_line_end(self):
        with open(self.path, "rb") as f:
            f.seek(self.head)
            f.readline()
            return f.tell()

    def _drop_oldest(self):
        self.head = self._oldest_line_end()
        self.count -= 1
        self.dropped += 1

    # ------------------------------------------------------------------ API

    def __len__(self):
        return self.count

    def append(self, channel, payload):
        """Store one message (channel name, payload dict). Raises OSError when the flash write fails."""
        if self.count >= self.capacity:
            self._drop_oldest()
            self._save_index()
        line = json.dumps([channel, payload]) + "\n"
        with open(self.path, "ab") as f:
            f.write(line.encode())
        self.count += 1

    def peek(self):
        """``(channel, payload dict)`` of the oldest message, or None when empty; unreadable lines are skipped."""
        while self.count > 0:
            with open(self.path, "rb") as f:
                f.seek(self.head)
                line = f.readline()
            try:
                channel, payload = json.loads(line)
                return channel, payload
            except (ValueError, TypeError):
                self.pop()
        return None

    def pop(self):
        """Forget the oldest message (call after its PUBACK)."""
        if self.count == 0:
            return
        self.head = self._oldest_line_end()
        self.count -= 1
        if self.count == 0:
            try:
                os.remove(self.path)
            except OSError:
                pass
            self.head = 0
        elif self.head >= COMPACT_BYTES:
            self._compact()
            return
        self._save_index()

    def sent(self):
        """A message went out with the drop count: start counting drops again from zero."""
        if self.dropped:
            self.dropped = 0
            self._save_index()
