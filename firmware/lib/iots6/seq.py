"""The per-device message counter ``seq``, kept across reboots without a flash write per message.

A lease scheme: ``seq.json`` holds ``limit``; numbers below it may be used.  When the counter reaches the limit,
a new limit ``+every`` is written *before* the number is used.  At boot the counter starts at the stored limit
(the safe jump past anything the last run could have used), so a value never repeats even after a crash, at the
cost of skipping at most ``every`` numbers per reboot.

A full or read-only flash never stops the boot: the counter then has no lease and ``next()`` raises OSError
until one can be written (the caller drops the reading and counts it).  Numbering without a lease would risk
repeating a seq after the next reboot, and the ingest drops a repeated seq as a duplicate.
"""

from iots6.compat import join, read_json, write_json

SEQ_FILE = "seq.json"


class SeqCounter:
    def __init__(self, root="/", every=20):
        self.path = join(root, SEQ_FILE)
        self.every = every
        data = read_json(self.path, {}) or {}
        start = data.get("limit", 0) if isinstance(data, dict) else 0
        if not isinstance(start, int) or start < 0:
            start = 0
        self.value = start
        self.limit = start  # nothing leased yet: the first next() writes a lease
        try:
            self._extend()
        except OSError:
            pass  # flash full or read-only: the boot goes on, next() retries the lease

    def _extend(self):
        limit = self.value + self.every
        write_json(self.path, {"limit": limit})
        self.limit = limit

    def next(self):
        """The next sequence number. Raises OSError if the lease cannot be written (the number is not used)."""
        if self.value >= self.limit:
            self._extend()
        value = self.value
        self.value += 1
        return value
