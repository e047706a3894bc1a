"""The ingest's periodic database work, on its own thread and its own connection: the rollup refresh (every
``rollup_interval_s`` over the range the batches touched) and ``iots6_maintain()`` (at start, then every
``maintenance_interval_s``).

Why not in the write loop: ``iots6_refresh_rollups`` recomputes the current hour from the raw readings, so late in
an hour of 1,000 readings/s one refresh takes seconds, and every batch waiting behind it took as long to commit
(10,000 connected devices at 0.1 Hz: publish -> committed p99 2.6 s with the refresh inline, 0.11 s without it;
docs/benchmarks.md).  Here a slow refresh costs only its own CPU.  Nothing is acknowledged on its account: a failed
refresh keeps its range and is retried at the next interval.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg

from iots6_platform.ingest.config import IngestConfig
from iots6_platform.ingest.store import Store

log = logging.getLogger("iots6.ingest.background")


class Background:
    def __init__(self, config: IngestConfig):
        self.config = config
        self.store = Store(config.database_url, config.database_password)
        self.lock = threading.Lock()
        self.dirty_from: datetime | None = None
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def mark_dirty(self, since: datetime) -> None:
        """Readings as old as ``since`` were committed: the next refresh starts there (or earlier)."""
        with self.lock:
            self.dirty_from = since if self.dirty_from is None else min(self.dirty_from, since)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="ingest-background", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)
        self.store.reset()

    def _run(self) -> None:
        now = time.monotonic()
        next_rollup, next_maintain = now + self.config.rollup_interval_s, now
        while not self.stopping.wait(max(0.0, min(next_rollup, next_maintain) - time.monotonic())):
            now = time.monotonic()
            if now >= next_rollup:
                self.refresh_rollups()
                next_rollup = now + self.config.rollup_interval_s
            if now >= next_maintain:
                self.maintain()
                next_maintain = now + self.config.maintenance_interval_s

    def refresh_rollups(self) -> None:
        with self.lock:
            start, self.dirty_from = self.dirty_from, None
        if start is None:
            return
        try:
            self.store.refresh_rollups(start, datetime.now(UTC) + timedelta(minutes=1))
        except psycopg.Error as exc:
            self.mark_dirty(start)
            log.warning("rollup refresh failed: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
            self.store.reset()

    def maintain(self) -> None:
        try:
            self.store.maintain()
        except psycopg.Error as exc:
            log.warning("maintenance failed: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
            self.store.reset()
