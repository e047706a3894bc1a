"""Nothing lost, nothing duplicated: a stream of thousands of readings through an ingest that is SIGKILLed, a
broker that restarts and a database that crashes; and a stream split between two shared-subscription workers.
(A broker *crash* can lose acknowledged readings: tests/integration/test_durability.py bounds how many.)"""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from iots6_platform.core import contract
from iots6_platform.core.contract import Reading

from .conftest import wait_until

BASE = contract.DEFAULT_TOPIC_BASE


def _payload(device_id: str, seq: int, start: datetime) -> str:
    reading = Reading(
        start + timedelta(milliseconds=100 * seq),
        device_id,
        "telemetry",
        seq,
        20.0 + seq % 10,
        50.0,
        1000.0,
        None,
        None,
        None,
        None,
        None,
    )
    return contract.make_payload(reading)


def _per_device(database, device_ids):
    with database.connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT device_id, count(*), count(DISTINCT seq), min(seq), max(seq) FROM sensor_data "
            "WHERE device_id = ANY(%s) GROUP BY device_id",
            (list(device_ids),),
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _publisher(device, count: int, start: datetime, duration: float, mids: list, stop: threading.Event):
    topic = contract.topic(BASE, device.device_id, contract.TELEMETRY)
    pause = duration / count
    for seq in range(count):
        if stop.is_set():
            return
        mids.append(device.publish(topic, _payload(device.device_id, seq, start)))
        time.sleep(pause)


@pytest.mark.slow
def test_kill_ingest_restart_broker_restart_database_loses_and_duplicates_nothing(
    ingest_factory, provision, broker, pg, database, device_id
):
    per_device, duration = 1500, 14.0
    worker = ingest_factory().start()
    devices = [provision(f"{device_id}-{i}", persistent=True) for i in range(3)]
    start = datetime.now(UTC) - timedelta(hours=1)
    mids = {d.device_id: [] for d in devices}
    stop = threading.Event()
    threads = [
        threading.Thread(target=_publisher, args=(d, per_device, start, duration, mids[d.device_id], stop))
        for d in devices
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(2.5)
        assert worker.kill(signal.SIGKILL) == -signal.SIGKILL  # no flush, no goodbye
        time.sleep(1.0)
        worker.start()
        time.sleep(2.0)
        broker.server.stop()  # clean stop: Mosquitto saves its persistent sessions and queues
        time.sleep(1.0)
        broker.server.start()
        wait_until(worker.healthy, 30, 0.2, "ingest reconnected to the broker")
        time.sleep(2.0)
        pg.server.stop(mode="immediate")  # a database crash: no checkpoint, crash recovery on the next start
        time.sleep(2.0)
        pg.server.start()
    finally:
        for t in threads:
            t.join(timeout=60)
        stop.set()
    for d in devices:
        d.wait_acked(mids[d.device_id], timeout=60)
    ids = [d.device_id for d in devices]
    try:
        wait_until(
            lambda: (
                all(v[0] >= per_device for v in _per_device(database, ids).values())
                and len(_per_device(database, ids)) == 3
            ),
            90,
            0.5,
            "every reading stored",
        )
    except AssertionError:
        raise AssertionError(
            f"stored {_per_device(database, ids)}; ingest log:\n{worker.log_text()[-3000:]}"
            f"\nbroker log:\n{broker.server.log_file.read_text()[-2000:]}"
        ) from None
    time.sleep(1.0)  # anything still in flight would show up as an extra row now
    result = _per_device(database, ids)
    for device in ids:
        assert result[device] == (per_device, per_device, 0, per_device - 1), (device, result[device])
    assert worker.metric("iots6_ingest_duplicates_total") >= 0
    assert "database write failed" in worker.log_text() or "not reachable" in worker.log_text()


def test_two_workers_split_a_shared_subscription(ingest_factory, provision, database, device_id):
    group = "g-" + device_id
    workers = [ingest_factory(index=i, INGEST_SHARE_GROUP=group).start() for i in (1, 2)]
    devices = [provision(f"{device_id}-{i}") for i in range(4)]
    start = datetime.now(UTC) - timedelta(minutes=30)
    count = 200
    for d in devices:
        topic = contract.topic(BASE, d.device_id, contract.TELEMETRY)
        d.wait_acked([d.publish(topic, _payload(d.device_id, seq, start)) for seq in range(count)])
    ids = [d.device_id for d in devices]
    wait_until(
        lambda: sum(v[0] for v in _per_device(database, ids).values()) == count * len(ids),
        30,
        0.2,
        "all readings stored",
    )
    # Each reading went to exactly one worker, and both did work. (Messages received can include retained
    # messages other tests left on the shared broker, so count stored readings.)
    stored = [w.metric("iots6_ingest_readings_stored_total") for w in workers]
    assert sum(stored) == count * len(ids)
    assert all(s > 0 for s in stored), stored
    assert all(v[:2] == (count, count) for v in _per_device(database, ids).values())
