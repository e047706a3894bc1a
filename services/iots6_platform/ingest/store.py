"""The database side of the ingest: one transaction per batch, COPY into a staging table, then an INSERT that
lets the unique key absorb redeliveries.  Nothing here acknowledges anything: the caller acks after commit.

In the same transaction: the registry (last seen, firmware, RSSI, and the `dropped` counts devices report), the
values the contract rejected from otherwise stored readings (``rejected_field``) and the dead letters.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from iots6_platform.core.contract import READING_COLUMNS, FieldRejection, Reading

log = logging.getLogger("iots6.ingest.store")

STAGING = "ingest_staging"
_COLUMNS = READING_COLUMNS + ("received_at",)
CREATE_STAGING = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} (LIKE sensor_data INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
COPY_STAGING = f"COPY {STAGING} ({', '.join(_COLUMNS)}) FROM STDIN"
INSERT_FROM_STAGING = (
    f"INSERT INTO sensor_data ({', '.join(_COLUMNS)}) SELECT {', '.join(_COLUMNS)} FROM {STAGING} "
    "ON CONFLICT ON CONSTRAINT sensor_data_reading_key DO NOTHING"
)
# The same, for a batch in which some device reported drops: only readings stored now (not redeliveries) add
# their `dropped` to the registry. Returns (rows stored, drops counted).
INSERT_FROM_STAGING_COUNTING_DROPS = f"""
WITH stored AS (
    {INSERT_FROM_STAGING}
    RETURNING device_id, time, dropped
), counted AS (
    UPDATE devices AS d SET
        dropped_total = d.dropped_total + s.dropped,
        dropped_at = GREATEST(d.dropped_at, s.time)
    FROM (SELECT device_id, sum(dropped) AS dropped, max(time) AS time FROM stored WHERE dropped > 0
          GROUP BY device_id) AS s
    WHERE d.device_id = s.device_id
    RETURNING s.dropped
)
SELECT (SELECT count(*) FROM stored), (SELECT coalesce(sum(dropped), 0)::bigint FROM counted)
"""
COUNT_DROPS_ONE = (
    "UPDATE devices SET dropped_total = dropped_total + %s, dropped_at = GREATEST(dropped_at, %s) WHERE device_id = %s"
)
# A redelivered reading's rejections are already there: the key absorbs them. Returns what was recorded now.
INSERT_REJECTED_FIELDS = """
INSERT INTO rejected_field (received_at, device_id, time, kind, seq, field, raw_value, reason, detail, topic)
SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::timestamptz[], %s::text[], %s::bigint[], %s::text[],
                     %s::text[], %s::text[], %s::text[], %s::text[])
ON CONFLICT ON CONSTRAINT rejected_field_key DO NOTHING
RETURNING field, reason
"""
# The newest reading of each device in the batch updates the registry (never moves last_seen backwards).
UPDATE_DEVICES = f"""
UPDATE devices AS d SET
    last_seen = GREATEST(d.last_seen, s.time),
    fw = CASE WHEN d.last_seen IS NULL OR s.time >= d.last_seen THEN COALESCE(s.fw, d.fw) ELSE d.fw END,
    rssi = CASE WHEN d.last_seen IS NULL OR s.time >= d.last_seen THEN COALESCE(s.rssi, d.rssi) ELSE d.rssi END
FROM (SELECT DISTINCT ON (device_id) device_id, time, fw, rssi FROM {STAGING} ORDER BY device_id, time DESC) AS s
WHERE d.device_id = s.device_id
"""
UPDATE_STATUS = "UPDATE devices SET status = %s, status_at = %s WHERE device_id = %s"
INSERT_DEAD_LETTER = (
    "INSERT INTO dead_letter (received_at, topic, payload, reason, detail, device_id) VALUES (%s, %s, %s, %s, %s, %s)"
)
INSERT_ONE = (
    f"INSERT INTO sensor_data ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
    "ON CONFLICT ON CONSTRAINT sensor_data_reading_key DO NOTHING"
)
INSERT_STAGING_ONE = f"INSERT INTO {STAGING} ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
KNOWN_DEVICES = "SELECT device_id FROM devices WHERE device_id = ANY(%s) AND retired_at IS NULL"
REFRESH_ROLLUPS = "SELECT iots6_refresh_rollups(%s, %s)"
MAINTAIN = "SELECT iots6_maintain()"


@dataclass
class DeadLetter:
    received_at: datetime
    topic: str
    payload: bytes
    reason: str
    detail: str
    device_id: str | None


#: One reading of a batch: the reading, when it was received, its raw topic and payload (kept for the dead-letter
#: table should the device turn out to be unknown) and the values the contract set to None in it.
BatchReading = tuple[Reading, datetime, str, bytes, tuple[FieldRejection, ...]]


@dataclass
class Batch:
    """What one flush writes."""

    readings: list[BatchReading] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    statuses: list[tuple[str, str, datetime]] = field(default_factory=list)  # device_id, status, when


@dataclass
class BatchResult:
    stored: int
    duplicates: int
    dead_letters: list[DeadLetter]
    min_time: datetime | None
    rejected_fields: list[tuple[str, str]] = field(default_factory=list)  # (field, reason) recorded now
    dropped: int = 0  # readings devices reported dropping, from readings stored now


class Store:
    """One database connection, reopened after failures by the caller via :meth:`reset`."""

    def __init__(self, url: str, password: str | None = None):
        self.url = url
        self.password = password
        self.conn: psycopg.Connection | None = None
        self.known: set[str] = set()

    def connect(self) -> None:
        kwargs = {"autocommit": False, "connect_timeout": 5, "application_name": "iots6-ingest"}
        if self.password is not None:
            kwargs["password"] = self.password
        self.conn = psycopg.connect(self.url, **kwargs)
        with self.conn.transaction():
            self.conn.execute(CREATE_STAGING)

    def reset(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
        self.conn = None

    def ensure(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.connect()
        return self.conn

    def ping(self) -> None:
        conn = self.ensure()
        with conn.transaction():
            conn.execute("SELECT 1")

    def _unknown(self, conn, device_ids: set[str]) -> set[str]:
        missing = device_ids - self.known
        if missing:
            rows = conn.execute(KNOWN_DEVICES, (list(missing),)).fetchall()
            self.known.update(r[0] for r in rows)
            missing -= self.known
        return missing

    def write(self, batch: Batch) -> BatchResult:
        """Write a batch in one transaction. Raises psycopg.OperationalError when the database is gone."""
        conn = self.ensure()
        dead = list(batch.dead_letters)
        try:
            with conn.transaction():
                readings = self._drop_unknown(conn, batch, dead)
                stored, dropped = self._copy_insert(conn, readings)
                rejected = self._write_rejected_fields(conn, readings)
                self._write_side_tables(conn, batch, dead)
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            # A row the contract accepted but the database refused: write row by row so one bad row
            # is dead-lettered instead of stalling the stream.
            log.warning("batch rejected by the database (%s); retrying row by row", str(exc).splitlines()[0])
            dead = list(batch.dead_letters)
            with conn.transaction():
                readings = self._drop_unknown(conn, batch, dead)
                stored, dropped, readings = self._row_by_row(conn, readings, dead)
                rejected = self._write_rejected_fields(conn, readings)
                self._write_side_tables(conn, batch, dead)
        min_time = min((r[0].time for r in readings), default=None)
        return BatchResult(stored, len(readings) - stored, dead, min_time, rejected, dropped)

    def _drop_unknown(self, conn, batch: Batch, dead: list[DeadLetter]) -> list:
        unknown = self._unknown(conn, {r[0].device_id for r in batch.readings})
        if not unknown:
            return batch.readings
        kept = []
        for item in batch.readings:
            reading, received, topic, payload, _rejected = item
            if reading.device_id in unknown:
                detail = f"device {reading.device_id} is not provisioned (iotctl device provision)"
                dead.append(DeadLetter(received, topic, payload, "unknown_device", detail, reading.device_id))
            else:
                kept.append(item)
        return kept

    def _copy_insert(self, conn, readings: list[BatchReading]) -> tuple[int, int]:
        """COPY, INSERT, registry. Returns (rows stored, drops counted)."""
        if not readings:
            return 0, 0
        with conn.cursor() as cur:
            with cur.copy(COPY_STAGING) as copy:
                for reading, received, _topic, _payload, _rejected in readings:
                    copy.write_row((*reading, received))
            # The plain INSERT unless a device reported drops (rare): the common path stays as lean as before.
            if any(item[0].dropped for item in readings):
                stored, dropped = cur.execute(INSERT_FROM_STAGING_COUNTING_DROPS).fetchone()
            else:
                cur.execute(INSERT_FROM_STAGING)
                stored, dropped = cur.rowcount, 0
            cur.execute(UPDATE_DEVICES)
        return stored, dropped

    def _row_by_row(self, conn, readings: list[BatchReading], dead: list[DeadLetter]):
        """One savepoint per row. Returns (rows stored, drops counted, the readings the database accepted)."""
        stored = dropped = 0
        accepted = []
        with conn.cursor() as cur:
            for item in readings:
                reading, received, topic, payload, _rejected = item
                try:
                    with conn.transaction():
                        cur.execute(INSERT_ONE, (*reading, received))
                        new = cur.rowcount
                        if new and reading.dropped:
                            cur.execute(COUNT_DROPS_ONE, (reading.dropped, reading.time, reading.device_id))
                        # Kept in staging too, so the registry update below sees exactly the accepted rows.
                        cur.execute(INSERT_STAGING_ONE, (*reading, received))
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    reason = str(exc).splitlines()[0][:300]
                    dead.append(DeadLetter(received, topic, payload, "db_rejected", reason, reading.device_id))
                    continue
                stored += new
                dropped += reading.dropped if new and reading.dropped else 0
                accepted.append(item)
            cur.execute(UPDATE_DEVICES)
        return stored, dropped, accepted

    def _write_rejected_fields(self, conn, readings: list[BatchReading]) -> list[tuple[str, str]]:
        """Record the values the contract set to None in the readings written; (field, reason) of each new row."""
        rows = [
            (received, r.device_id, r.time, r.kind, r.seq, x.field, x.raw, x.reason, x.detail, topic)
            for r, received, topic, _payload, rejected in readings
            for x in rejected
        ]
        if not rows:
            return []
        columns = [list(column) for column in zip(*rows, strict=True)]
        return [tuple(row) for row in conn.execute(INSERT_REJECTED_FIELDS, columns).fetchall()]

    def _write_side_tables(self, conn, batch: Batch, dead: list[DeadLetter]) -> None:
        with conn.cursor() as cur:
            if batch.statuses:
                latest: dict[str, tuple[str, datetime]] = {}
                for device_id, status, when in batch.statuses:
                    latest[device_id] = (status, when)
                cur.executemany(UPDATE_STATUS, [(s, w, d) for d, (s, w) in latest.items()])
            if dead:
                cur.executemany(
                    INSERT_DEAD_LETTER,
                    [(d.received_at, d.topic, d.payload, d.reason, d.detail, d.device_id) for d in dead],
                )

    # -- periodic work
    def refresh_rollups(self, start: datetime, end: datetime) -> None:
        conn = self.ensure()
        with conn.transaction():
            conn.execute(REFRESH_ROLLUPS, (start, end))

    def maintain(self) -> dict:
        conn = self.ensure()
        started = time.monotonic()
        with conn.transaction():
            result = conn.execute(MAINTAIN).fetchone()[0]
        log.info("maintenance done in %.2fs: %s", time.monotonic() - started, result)
        return result


def utcnow() -> datetime:
    return datetime.now(UTC)
