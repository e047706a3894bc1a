"""The ingest loop: MQTT (QoS 1, persistent session, manual acks) in, PostgreSQL out, nothing acknowledged before
it is committed.

Threads: the network thread (``iots6_platform.ingest.wire``: a lean MQTT reader, see there why not paho) parses each
message into the pending list (``on_message``); the main thread
flushes pending messages to the database by size or age, commits, then acknowledges them in the order received.

* A redelivered message (after a crash, a broker restart or a lost PUBACK) hits the unique key and is counted as
  a duplicate, not stored twice.
* A message that breaks the contract is written to ``dead_letter`` with its reason in the same transaction as the
  batch, and acknowledged: it never blocks the stream.  A reading with one wrong value is stored with that value
  NULL, the value recorded in ``rejected_field`` (``contract.parse_message(..., rejected)``).
* When the database is down the batch stays in memory, unacknowledged; the broker sends no more than
  ``receive_maximum`` unacknowledged messages, so memory stays bounded; the flush is retried with backoff.
* When the broker connection drops, messages received on the old connection are still written, but not
  acknowledged (their packet ids belong to the dead connection); the broker redelivers them and the unique key
  absorbs the copies.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg

from iots6_platform.core import contract
from iots6_platform.ingest import metrics
from iots6_platform.ingest.config import IngestConfig
from iots6_platform.ingest.store import Batch, DeadLetter, Store
from iots6_platform.ingest.wire import Consumer, Refused, tls_context

log = logging.getLogger("iots6.ingest")

#: Session kept by the broker while the ingest is away (seconds): a week of buffering across outages.
SESSION_EXPIRY_S = 7 * 24 * 3600


class Pending:
    """Messages parsed but not yet committed, plus the packet ids to acknowledge once they are."""

    __slots__ = ("batch", "acks", "count", "first_at")

    def __init__(self):
        self.batch = Batch()
        self.acks: list[tuple[int, int, int]] = []  # (generation, mid, qos)
        self.count = 0
        self.first_at = 0.0


class Ingestor:
    def __init__(self, config: IngestConfig):
        self.config = config
        self.store = Store(config.database_url, config.database_password)
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.pending = Pending()
        self.generation = 0
        self.connected = False
        self.db_ok = False
        self.stopping = threading.Event()
        self.dirty_from: datetime | None = None
        self.dirty_to: datetime | None = None
        self.consumer: Consumer | None = None
        self.network: threading.Thread | None = None
        # Set after the final flush on shutdown, so the last batch is acknowledged before we disconnect.
        self.network_stop = threading.Event()

    # ------------------------------------------------------------------ MQTT side (network thread)
    def subscription(self) -> str:
        topic = contract.subscription(self.config.topic_base)
        if self.config.share_group and self.config.mqtt_protocol == "5":
            return f"$share/{self.config.share_group}/{topic}"
        return topic

    def _set_connected(self, consumer: Consumer | None) -> None:
        with self.lock:
            self.generation += 1
            self.consumer = consumer
            self.connected = consumer is not None
        metrics.MQTT_CONNECTED.set(1 if consumer is not None else 0)

    def _network(self) -> None:
        """Connect, subscribe, read; on any failure reconnect with backoff (0.2 s doubling to 10 s, jittered)."""
        cfg = self.config
        delay = 0.2
        tls = (
            tls_context(cfg.mqtt_tls_ca_file, cfg.mqtt_tls_cert_file, cfg.mqtt_tls_key_file)
            if cfg.mqtt_tls_ca_file
            else None
        )
        while not self.network_stop.is_set():
            consumer = Consumer(
                cfg.mqtt_host,
                cfg.mqtt_port,
                cfg.client_id,
                cfg.mqtt_username,
                cfg.mqtt_password,
                self._on_message,
                protocol=cfg.mqtt_protocol,
                keepalive=30,
                session_expiry=SESSION_EXPIRY_S,
                receive_maximum=cfg.receive_maximum,
                tls=tls,
            )
            try:
                present = consumer.connect()
                # Subscribing again is harmless when the session already has it, and needed when it does not.
                consumer.subscribe(self.subscription())
                self._set_connected(consumer)
                log.info(
                    "connected to %s:%s%s (session present: %s)",
                    cfg.mqtt_host,
                    cfg.mqtt_port,
                    " over TLS" if tls else "",
                    present,
                )
                delay = 0.2
                consumer.read(self.network_stop)
            except Refused as exc:
                log.error("%s; retrying in %.1fs", exc, delay)
            except OSError as exc:
                if not self.network_stop.is_set():
                    log.warning(
                        "broker %s:%s: %s; reconnecting in %.1fs",
                        cfg.mqtt_host,
                        cfg.mqtt_port,
                        exc.strerror or exc,
                        delay,
                    )
            finally:
                self._set_connected(None)
                if self.network_stop.is_set():
                    consumer.disconnect()  # normal DISCONNECT: the broker keeps the session and queues for us
                else:
                    consumer.close()
            self.network_stop.wait(delay + random.uniform(0, delay / 2))
            delay = min(delay * 2, 10.0)

    def _on_message(self, topic_name: str, payload: bytes, mid: int, qos: int) -> None:
        """Parse into the pending batch. Never raises: a bad message becomes a dead letter."""
        now = datetime.now(UTC)
        rejected: list[contract.FieldRejection] = []  # values set to None in an otherwise good reading
        try:
            parsed, value = contract.parse_message(self.config.topic_base, topic_name, payload, now, rejected)
        except contract.ContractError as exc:
            item, kind = (
                DeadLetter(
                    now,
                    topic_name,
                    bytes(payload)[:65536],
                    exc.reason,
                    exc.detail,
                    _device_of(self.config.topic_base, topic_name),
                ),
                "dead",
            )
        except Exception as exc:  # a parser bug must not kill the network thread
            log.exception("unexpected error parsing a message on %s", topic_name)
            item, kind = (
                DeadLetter(
                    now,
                    topic_name,
                    bytes(payload)[:65536],
                    "internal_error",
                    f"{type(exc).__name__}: {exc}"[:300],
                    None,
                ),
                "dead",
            )
        else:
            if isinstance(value, contract.Reading):
                item, kind = (value, now, topic_name, payload, tuple(rejected)), "reading"
            elif isinstance(value, str):
                item, kind = (parsed.device_id, value, now), "status"
            else:
                item, kind = None, "ignored"  # config notices are for devices
        with self.lock:
            pending = self.pending
            first = pending.count == 0
            if first:
                pending.first_at = time.monotonic()
            pending.count += 1
            if kind == "reading":
                pending.batch.readings.append(item)
            elif kind == "dead":
                pending.batch.dead_letters.append(item)
            elif kind == "status":
                pending.batch.statuses.append(item)
            if qos:
                pending.acks.append((self.generation, mid, qos))
            full = pending.count >= self.config.batch_size
        metrics.RECEIVED.inc()
        if full or first:  # first: the main thread sleeps until exactly flush_ms after it
            self.wake.set()

    # ------------------------------------------------------------------ database side (main thread)
    def _take(self) -> tuple[Pending, int]:
        with self.lock:
            taken, self.pending = self.pending, Pending()
            return taken, self.generation

    def _restore(self, taken: Pending) -> None:
        """Put a batch that could not be written back in front of what arrived meanwhile."""
        with self.lock:
            newer = self.pending
            taken.batch.readings.extend(newer.batch.readings)
            taken.batch.dead_letters.extend(newer.batch.dead_letters)
            taken.batch.statuses.extend(newer.batch.statuses)
            taken.acks.extend(newer.acks)
            taken.count += newer.count
            self.pending = taken

    def flush(self) -> bool:
        """Write what is pending; ack it after commit. False if the database failed (batch kept)."""
        taken, _ = self._take()
        if taken.count == 0:
            return True
        started = time.monotonic()
        try:
            result = self.store.write(taken.batch)
        except psycopg.Error as exc:
            self.db_ok = False
            metrics.DB_ERRORS.inc()
            log.warning(
                "database write failed (%s); keeping %d messages unacknowledged",
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                taken.count,
            )
            self.store.reset()
            self._restore(taken)
            return False
        self.db_ok = True
        committed = time.monotonic()
        with self.lock:
            generation = self.generation
            consumer = self.consumer
        acked = 0
        if consumer is not None:
            # Only packet ids of the current connection: the old connection's died with it (redelivered).
            mids = [mid for gen, mid, _qos in taken.acks if gen == generation]
            try:
                consumer.ack(mids)
                acked = len(mids)
            except OSError as exc:  # the connection just broke: the broker redelivers, the unique key absorbs
                log.info("acknowledging %d messages failed (%s); they will be redelivered", len(mids), exc)
        metrics.STORED.inc(result.stored)
        metrics.DUPLICATES.inc(result.duplicates)
        for dead in result.dead_letters:
            metrics.DEAD_LETTERS.labels(dead.reason).inc()
        for name, reason in result.rejected_fields:
            metrics.REJECTED_FIELDS.labels(name, reason).inc()
        metrics.DEVICE_DROPPED.inc(result.dropped)
        metrics.BATCH_SIZE.observe(taken.count)
        metrics.BATCH_SECONDS.observe(committed - started)
        metrics.COMMIT_LAG.observe(committed - taken.first_at)
        if result.min_time is not None:
            self.dirty_from = result.min_time if self.dirty_from is None else min(self.dirty_from, result.min_time)
        if acked < len(taken.acks):
            log.info(
                "committed %d messages; %d left unacknowledged for redelivery (connection changed)",
                taken.count,
                len(taken.acks) - acked,
            )
        return True

    def _due(self) -> bool:
        with self.lock:
            count, first_at = self.pending.count, self.pending.first_at
        if count == 0:
            return False
        return count >= self.config.batch_size or (time.monotonic() - first_at) * 1000 >= self.config.flush_ms

    def _sleep_for(self, idle: float) -> float:
        """Until the oldest pending message is flush_ms old (a fixed tick made it wait up to 1.5 x flush_ms)."""
        with self.lock:
            count, first_at = self.pending.count, self.pending.first_at
        if count == 0:
            return idle
        return max(0.0, first_at + self.config.flush_ms / 1000 - time.monotonic())

    def _periodic(self, now: float, timers: dict[str, float]) -> None:
        if self.dirty_from is not None and now >= timers["rollup"]:
            start, self.dirty_from = self.dirty_from, None
            try:
                self.store.refresh_rollups(start, datetime.now(UTC) + timedelta(minutes=1))
            except psycopg.Error as exc:
                self.dirty_from = start if self.dirty_from is None else min(start, self.dirty_from)
                log.warning("rollup refresh failed: %s", str(exc).strip().splitlines()[0])
                self.store.reset()
            timers["rollup"] = now + self.config.rollup_interval_s
        if now >= timers["maintain"]:
            try:
                self.store.maintain()
            except psycopg.Error as exc:
                log.warning("maintenance failed: %s", str(exc).strip().splitlines()[0])
                self.store.reset()
            timers["maintain"] = now + self.config.maintenance_interval_s

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (or :meth:`stop`); flush, then disconnect keeping the session."""
        self._connect_db_with_backoff()
        self.network = threading.Thread(target=self._network, name="ingest-mqtt", daemon=True)
        self.network.start()
        timers = {"rollup": time.monotonic() + self.config.rollup_interval_s, "maintain": time.monotonic()}
        backoff = 0.5
        tick = self.config.flush_ms / 1000 / 2
        while not self.stopping.is_set():
            self.wake.wait(self._sleep_for(tick))
            self.wake.clear()
            if self._due():
                if self.flush():
                    backoff = 0.5
                else:
                    self.stopping.wait(backoff + random.uniform(0, backoff / 2))
                    backoff = min(backoff * 2, 10.0)
                    continue
            self._periodic(time.monotonic(), timers)
        self._shutdown()
        return 0

    def _connect_db_with_backoff(self) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            try:
                self.store.connect()
                self.db_ok = True
                return
            except psycopg.Error as exc:
                log.warning(
                    "database %s not reachable (%s); retrying in %.1fs",
                    self.config.database_url,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "error",
                    delay,
                )
                self.stopping.wait(delay)
                delay = min(delay * 2, 10.0)

    def _shutdown(self) -> None:
        log.info("stopping: flushing pending messages")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.flush():
                break
            time.sleep(0.5)
        # Disconnect without unsubscribing: the persistent session keeps queueing for us while we are away.
        self.network_stop.set()
        if self.network is not None:
            self.network.join(timeout=5)
        self.store.reset()
        log.info("stopped")

    def stop(self, *_args) -> None:
        self.stopping.set()
        self.wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def health(self) -> tuple[bool, dict]:
        with self.lock:
            pending = self.pending.count
            connected = self.connected
        ok = connected and self.db_ok
        return ok, {
            "mqtt": "connected" if connected else "disconnected",
            "db": "ok" if self.db_ok else "error",
            "pending": pending,
        }


def _device_of(base: str, topic_name: str) -> str | None:
    parts = topic_name.split("/")
    if len(parts) >= 2 and parts[0] == base and contract.valid_device_id(parts[1]):
        return parts[1]
    return None
