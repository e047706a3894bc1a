"""The data path against a real Mosquitto, a real PostgreSQL and the real ingest process."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime, timedelta

import pytest

from iots6_platform.core import contract
from iots6_platform.core.contract import Reading

from .conftest import count_rows, wait_until
from .outside import mosquitto_pub, psql, registered_device

BASE = contract.DEFAULT_TOPIC_BASE


def v1(device_id: str, seq: int, when: datetime | None = None, **extra) -> str:
    reading = Reading(
        when or datetime.now(UTC),
        device_id,
        "telemetry",
        seq,
        21.5,
        40.0,
        1013.2,
        False,
        True,
        -60,
        120,
        "1.0.0",
    )
    return contract.make_payload(reading, **extra)


def stored(database, device_id: str) -> int:
    return count_rows(database, "SELECT count(*) FROM sensor_data WHERE device_id = %s", (device_id,))


def test_v1_reading_is_stored_once_with_registry_updated(ingest, provision, database, device_id):
    device = provision(device_id)
    when = (datetime.now(UTC) - timedelta(seconds=1)).replace(microsecond=123000)  # in the past, ms precision
    mid = device.publish(contract.topic(BASE, device_id, contract.TELEMETRY), v1(device_id, 7, when))
    device.wait_acked([mid])
    wait_until(lambda: stored(database, device_id) == 1, 10, what="row stored")
    with database.connect() as conn:
        row = conn.execute(
            "SELECT time, kind, seq, temperature, humidity, pressure, motion, switch, rssi, uptime_s, fw, "
            "received_at >= time FROM sensor_data WHERE device_id = %s",
            (device_id,),
        ).fetchone()
        assert row == (when, "telemetry", 7, 21.5, 40.0, 1013.2, False, True, -60, 120, "1.0.0", True)
        last_seen, fw, rssi = conn.execute(
            "SELECT last_seen, fw, rssi FROM devices WHERE device_id = %s", (device_id,)
        ).fetchone()
        assert (last_seen, fw, rssi) == (when, "1.0.0", -60)


def test_event_topic_stores_the_edge_kind(ingest, provision, database, device_id):
    device = provision(device_id)
    payload = v1(device_id, 3, event="motion", motion=True)
    device.wait_acked([device.publish(contract.topic(BASE, device_id, contract.EVENT), payload)])
    wait_until(lambda: stored(database, device_id) == 1, 10, what="event stored")
    assert (
        count_rows(
            database,
            "SELECT count(*) FROM sensor_data WHERE device_id = %s AND kind = 'motion' AND motion",
            (device_id,),
        )
        == 1
    )


def test_legacy_format_is_converted(ingest, provision, database, device_id):
    device = provision(device_id)
    legacy = {
        "event_type": "heartbeat",
        "device_id": device_id,
        "temperature": 72.5,
        "humidity": 45.2,
        "pressure": 29.92,
        "motion": "HIGH",
        "switch": "UNKNOWN",
        "wifi_rssi": -55,
        "uptime_seconds": 3600,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "version": "0.9",
        "location": "lab",
    }
    mid = device.publish(contract.topic(BASE, device_id, contract.LEGACY), "MQTT event: " + json.dumps(legacy))
    device.wait_acked([mid])
    wait_until(lambda: stored(database, device_id) == 1, 10, what="legacy row stored")
    with database.connect() as conn:
        row = conn.execute(
            "SELECT kind, seq, round(temperature::numeric, 2), humidity, round(pressure::numeric, 1), motion, switch,"
            " rssi, uptime_s, fw FROM sensor_data WHERE device_id = %s",
            (device_id,),
        ).fetchone()
    assert tuple(map(lambda v: float(v) if hasattr(v, "as_tuple") else v, row)) == (
        "telemetry",
        0,
        22.5,
        45.2,
        1013.2,
        True,
        None,
        -55,
        3600,
        "0.9",
    )


def test_redelivered_message_is_stored_once(ingest, provision, database, device_id):
    device = provision(device_id)
    payload = v1(device_id, 1)
    mids = [device.publish(contract.topic(BASE, device_id, contract.TELEMETRY), payload) for _ in range(3)]
    device.wait_acked(mids)
    wait_until(lambda: ingest.metric("iots6_ingest_duplicates_total") >= 2, 10, what="duplicates counted")
    assert stored(database, device_id) == 1


def _bad_cases(device_id: str, other: str):
    now = datetime.now(UTC)
    good = json.loads(v1(device_id, 1, now))
    # A wrong value costs only itself when another value is usable (test below); alone, it loses the message.
    bare = {k: good[k] for k in ("v", "device_id", "ts", "seq")}
    telemetry = contract.topic(BASE, device_id, contract.TELEMETRY)
    return [
        ("not_json", telemetry, b"\xff\xfe not json"),
        ("not_object", telemetry, b"[1, 2, 3]"),
        ("malformed", telemetry, json.dumps({**good, "x": json.loads("[" * 40 + "]" * 40)})),
        ("bad_type", telemetry, json.dumps({**bare, "temperature": "warm"})),
        ("bad_type", telemetry, json.dumps({**bare, "motion": "yes"})),
        ("missing_field", telemetry, json.dumps({k: v for k, v in good.items() if k != "seq"})),
        ("missing_field", telemetry, json.dumps({k: v for k, v in good.items() if k != "ts"})),
        ("impossible_value", telemetry, json.dumps({**bare, "humidity": 130})),
        ("impossible_value", telemetry, json.dumps({**bare, "pressure": 5, "temperature": 300})),
        ("bad_timestamp", telemetry, json.dumps({**good, "ts": "yesterday"})),
        ("clock_not_set", telemetry, json.dumps({**good, "ts": "2000-01-01T00:00:05Z"})),
        (
            "future_timestamp",
            telemetry,
            json.dumps({**good, "ts": contract.format_ts(now + timedelta(days=2))}),
        ),
        ("device_mismatch", telemetry, json.dumps({**good, "device_id": other})),
        ("oversized", telemetry, json.dumps({**good, "pad": "x" * contract.MAX_PAYLOAD_BYTES})),
        ("unknown_device", contract.topic(BASE, other, contract.TELEMETRY), v1(other, 1, now)),
        ("bad_topic", f"{BASE}/{device_id}/telemetry/extra", json.dumps(good)),
        ("bad_topic", f"{BASE}/{device_id}/readings", json.dumps(good)),
        ("bad_device_id", f"{BASE}/bad.id/telemetry", json.dumps(good)),
    ]


def test_every_bad_input_class_is_dead_lettered_with_its_reason(ingest, broker, provision, database, device_id):
    provision(device_id)
    other = device_id + "-unprovisioned"
    # The fixture's test-only publisher may publish anywhere under the base: it can produce every bad shape.
    from iotctl.endpoints import MqttEndpoint
    from iotctl.mqtt import connect

    operator = connect(MqttEndpoint(broker.host, broker.port, *broker.publisher))
    cases = _bad_cases(device_id, other)
    infos = [operator.publish(topic, payload, qos=1) for _, topic, payload in cases]
    for info in infos:
        info.wait_for_publish(10)
    good = provision(device_id + "-ok")
    good_topic = contract.topic(BASE, good.device_id, contract.TELEMETRY)
    good.wait_acked([good.publish(good_topic, v1(good.device_id, 1))])
    wait_until(
        lambda: count_rows(database, "SELECT count(*) FROM dead_letter") >= len(cases),
        15,
        what="all dead letters",
    )
    with database.connect() as conn:
        rows = conn.execute("SELECT topic, payload, reason, detail FROM dead_letter ORDER BY id").fetchall()
    operator.disconnect()
    operator.loop_stop()
    assert sorted(r[2] for r in rows) == sorted(c[0] for c in cases)
    by_payload = {(bytes(r[1]), r[0]): r for r in rows}
    for reason, topic, payload in cases:
        raw = payload if isinstance(payload, bytes) else payload.encode()
        row = by_payload[(raw, topic)]
        assert row[2] == reason and row[3], row
    # Bad input never stalls the stream: the good reading behind them is stored.
    wait_until(lambda: stored(database, good.device_id) == 1, 10, what="good reading after bad ones")
    assert stored(database, device_id) == 0


def test_device_cannot_publish_on_another_devices_topic(ingest, provision, database, device_id):
    victim = provision(device_id + "-b")
    attacker = provision(device_id + "-a")
    topic = contract.topic(BASE, victim.device_id, contract.TELEMETRY)
    mid = attacker.publish(topic, v1(victim.device_id, 1))
    attacker.wait_acked([mid])
    assert attacker.refused.get(mid) == "Not authorized"
    ok_mid = attacker.publish(contract.topic(BASE, attacker.device_id, contract.TELEMETRY), v1(attacker.device_id, 1))
    attacker.wait_acked([ok_mid])
    wait_until(lambda: stored(database, attacker.device_id) == 1, 10, what="attacker's own reading")
    assert stored(database, victim.device_id) == 0
    assert count_rows(database, "SELECT count(*) FROM dead_letter") == 0


@pytest.mark.parametrize("credentials", ["wrong-password", "anonymous", "unknown-user"])
def test_bad_credentials_are_refused(broker, device_id, credentials):
    from iotctl.endpoints import MqttEndpoint
    from iotctl.errors import AuthRefused
    from iotctl.mqtt import connect

    broker.add_device(device_id)
    username, password = {
        "wrong-password": (device_id, "not-the-password"),
        "anonymous": ("", ""),
        "unknown-user": ("nobody-" + device_id, "whatever"),
    }[credentials]
    with pytest.raises(AuthRefused):
        connect(MqttEndpoint(broker.host, broker.port, username, password), timeout=5)


def test_status_updates_the_registry(ingest, provision, database, device_id):
    device = provision(device_id)
    mid = device.publish(contract.topic(BASE, device_id, contract.STATUS), "online", retain=True)
    device.wait_acked([mid])
    wait_until(
        lambda: (
            count_rows(
                database,
                "SELECT count(*) FROM devices WHERE device_id = %s AND status = 'online'",
                (device_id,),
            )
            == 1
        ),
        10,
        what="status online",
    )
    mid = device.publish(contract.topic(BASE, device_id, contract.STATUS), "no_clock", retain=True)
    device.wait_acked([mid])
    wait_until(
        lambda: (
            count_rows(
                database, "SELECT count(*) FROM devices WHERE device_id = %s AND status = 'no_clock'", (device_id,)
            )
            == 1
        ),
        10,
        what="status no_clock (firmware 0.2: connected, clock not set)",
    )
    device.publish(contract.topic(BASE, device_id, contract.STATUS), b"", retain=True)  # clear the retained msg


def test_rollups_follow_written_readings(ingest, provision, database, device_id):
    device = provision(device_id)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    topic = contract.topic(BASE, device_id, contract.TELEMETRY)
    mids = [device.publish(topic, v1(device_id, i, start + timedelta(seconds=10 * i))) for i in range(12)]
    device.wait_acked(mids)
    wait_until(
        lambda: (
            count_rows(
                database,
                "SELECT coalesce(sum(samples), 0) FROM sensor_data_1m WHERE device_id = %s",
                (device_id,),
            )
            == 12
        ),
        15,
        what="1-minute rollups",
    )
    assert count_rows(database, "SELECT count(*) FROM sensor_data_1m WHERE device_id = %s", (device_id,)) == 2
    wait_until(
        lambda: (
            count_rows(
                database,
                "SELECT coalesce(sum(samples), 0) FROM sensor_data_1h WHERE device_id = %s",
                (device_id,),
            )
            == 12
        ),
        15,
        what="1-hour rollups",
    )


def test_sigterm_flushes_and_exits_cleanly(ingest_factory, provision, database, device_id):
    worker = ingest_factory(INGEST_FLUSH_MS="5000", INGEST_BATCH_SIZE="10000").start()
    device = provision(device_id)
    topic = contract.topic(BASE, device_id, contract.TELEMETRY)
    mids = [device.publish(topic, v1(device_id, i)) for i in range(50)]
    device.wait_acked(mids)
    wait_until(lambda: worker.metric("iots6_ingest_messages_received_total") >= 50, 10, what="messages received")
    assert stored(database, device_id) == 0  # still pending: the flush interval is long
    assert worker.kill(signal.SIGTERM) == 0
    assert stored(database, device_id) == 50
    assert "stopped" in worker.log_text()


def test_health_and_metrics(ingest, provision, database, device_id):
    status, detail = ingest.health()
    assert status == 200 and detail["mqtt"] == "connected" and detail["db"] == "ok"
    device = provision(device_id)
    device.wait_acked([device.publish(contract.topic(BASE, device_id, contract.TELEMETRY), v1(device_id, 1))])
    wait_until(lambda: ingest.metric("iots6_ingest_readings_stored_total") >= 1, 10, what="stored metric")
    text = ingest.metrics()
    for name in (
        "iots6_ingest_messages_received_total",
        "iots6_ingest_batch_size_bucket",
        "iots6_ingest_batch_seconds_bucket",
        "iots6_ingest_commit_lag_seconds_bucket",
        "iots6_ingest_mqtt_connected 1.0",
    ):
        assert name in text


def test_bad_configuration_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "iots6_platform.ingest"],
        env={"PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "INGEST_MQTT_PASSWORD_FILE" in proc.stderr


def test_mqtt_311_session_against_mosquitto(ingest_factory, provision, database, device_id):
    """The ingest's 3.1.1 mode (used with the embedded broker) also stores and acknowledges after commit."""
    worker = ingest_factory(INGEST_MQTT_PROTOCOL="3.1.1").start()
    device = provision(device_id)
    topic = contract.topic(BASE, device_id, contract.TELEMETRY)
    device.wait_acked([device.publish(topic, v1(device_id, seq)) for seq in range(20)])
    wait_until(lambda: stored(database, device_id) == 20, 10, what="3.1.1 readings stored")
    assert "v3.1.1" in worker.log_text()


def test_wrong_broker_password_keeps_the_ingest_unhealthy_and_retrying(ingest_factory, tmp_path):
    from iotctl.secretfiles import write_secret

    bad = write_secret(tmp_path / "wrong.password", "not-the-password")
    worker = ingest_factory(INGEST_MQTT_PASSWORD_FILE=str(bad)).start(wait=False)
    wait_until(lambda: "refused the connection" in worker.log_text(), 15, what="refusal logged")
    status, detail = worker.health()
    assert status == 503 and detail["mqtt"] == "disconnected"
    assert worker.proc.poll() is None  # still running, retrying with backoff


def test_a_row_the_database_refuses_is_dead_lettered_and_the_rest_of_its_batch_stored(
    ingest_factory, provision, database, device_id
):
    # A rule the contract does not know (an operator's CHECK): the batch fails as a whole, then goes row by row.
    with database.connect(autocommit=True) as conn:
        conn.execute("ALTER TABLE sensor_data ADD CONSTRAINT site_max_temp CHECK (temperature < 100)")
    ingest_factory(INGEST_FLUSH_MS="1000").start()
    device = provision(device_id)
    topic = contract.topic(BASE, device_id, contract.TELEMETRY)
    base = datetime.now(UTC) - timedelta(minutes=1)
    hot = json.loads(v1(device_id, 1, base))
    hot["temperature"] = 110.0
    mids = [
        device.publish(topic, json.dumps(hot)),
        device.publish(topic, v1(device_id, 2, base + timedelta(seconds=5))),
    ]
    device.wait_acked(mids)
    wait_until(lambda: count_rows(database, "SELECT count(*) FROM dead_letter") == 1, 10, what="db_rejected row")
    with database.connect() as conn:
        assert conn.execute("SELECT reason FROM dead_letter").fetchone()[0] == "db_rejected"
        assert conn.execute("SELECT seq FROM sensor_data WHERE device_id = %s", (device_id,)).fetchall() == [(2,)]
        last_seen = conn.execute("SELECT last_seen FROM devices WHERE device_id = %s", (device_id,)).fetchone()[0]
    assert last_seen == base.replace(microsecond=base.microsecond // 1000 * 1000) + timedelta(seconds=5)


def _rejected(database, device_id: str) -> list[tuple]:
    with database.connect() as conn:
        return conn.execute(
            "SELECT field, raw_value, reason, kind, seq FROM rejected_field WHERE device_id = %s ORDER BY id",
            (device_id,),
        ).fetchall()


def test_one_impossible_field_costs_only_that_field(ingest, broker, database, device_id, tmp_path):
    """The older firmware's double-converted pressure (0.88) next to good values: the reading is stored with
    pressure NULL, the rejection recorded and counted; published with mosquitto_pub, inspected with psql."""
    password = registered_device(broker, database, device_id)
    stamp = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    legacy = {
        "event_type": "heartbeat",
        "device_id": device_id,
        "temperature": 68.0,
        "humidity": 41.5,
        "pressure": 0.88,
        "motion": "LOW",
        "switch": "HIGH",
        "wifi_rssi": -58,
        "uptime_seconds": 60,
        "timestamp": stamp,
        "version": "0.9",
    }
    reading = json.loads(v1(device_id, 3, datetime.now(UTC) - timedelta(seconds=4)))
    reading["humidity"] = 130
    for topic, payload in (
        (contract.topic(BASE, device_id, contract.LEGACY), "MQTT event: " + json.dumps(legacy)),
        (contract.topic(BASE, device_id, contract.TELEMETRY), json.dumps(reading)),
        (contract.topic(BASE, device_id, contract.TELEMETRY), json.dumps(reading)),  # a redelivery
    ):
        done = mosquitto_pub(broker, device_id, password, topic, tmp_path, message=payload)
        assert done.returncode == 0, done.stderr
    wait_until(lambda: stored(database, device_id) == 2, 10, what="both readings stored")
    wait_until(lambda: ingest.metric("iots6_ingest_duplicates_total") >= 1, 10, what="the redelivery absorbed")
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT seq, temperature, humidity, pressure, motion, switch, rssi FROM sensor_data "
            "WHERE device_id = %s ORDER BY seq",
            (device_id,),
        ).fetchall()
    assert rows == [(0, 20.0, 41.5, None, False, True, -58), (3, 21.5, None, 1013.2, False, True, -60)]
    assert _rejected(database, device_id) == [
        ("pressure", "0.88", "double_converted", "telemetry", 0),
        ("humidity", "130", "impossible_value", "telemetry", 3),
    ]
    assert count_rows(database, "SELECT count(*) FROM dead_letter") == 0
    # What an operator would run: counts by field and reason, and the detail of each.
    counts = psql(database, "SELECT field, reason, count(*) FROM rejected_field GROUP BY 1, 2 ORDER BY 1", tmp_path)
    assert counts == [["humidity", "impossible_value", "1"], ["pressure", "double_converted", "1"]]
    text = ingest.metrics()
    assert 'iots6_ingest_rejected_fields_total{field="pressure",reason="double_converted"} 1.0' in text
    assert 'iots6_ingest_rejected_fields_total{field="humidity",reason="impossible_value"} 1.0' in text


def test_deeply_nested_json_is_malformed_without_a_traceback(ingest, broker, database, device_id, tmp_path):
    """~1900 nested arrays in 3.9 KB used to raise RecursionError: `internal_error` and a traceback in the log."""
    password = registered_device(broker, database, device_id)
    good = json.loads(v1(device_id, 1))
    body = json.dumps(good)[:-1] + ', "x": ' + "[" * 1900 + "]" * 1900 + "}"
    assert 3800 < len(body) <= contract.MAX_PAYLOAD_BYTES
    path = tmp_path / "nested.json"
    path.write_text(body)
    done = mosquitto_pub(
        broker, device_id, password, contract.topic(BASE, device_id, contract.TELEMETRY), tmp_path, file=path
    )
    assert done.returncode == 0, done.stderr
    wait_until(lambda: count_rows(database, "SELECT count(*) FROM dead_letter") == 1, 10, what="dead letter")
    with database.connect() as conn:
        reason, detail, size = conn.execute("SELECT reason, detail, length(payload) FROM dead_letter").fetchone()
    assert (reason, size) == ("malformed", len(body)) and "32 levels" in detail
    assert ingest.metric("iots6_ingest_dead_letters_total") == 1
    assert "Traceback" not in ingest.log_text() and "internal_error" not in ingest.log_text()


def test_dropped_readings_are_stored_summed_once_and_exported(ingest, provision, database, device_id):
    device = provision(device_id)
    topic = contract.topic(BASE, device_id, contract.TELEMETRY)
    start = datetime.now(UTC) - timedelta(minutes=2)
    first = v1(device_id, 10, start, dropped=5)
    mids = [
        device.publish(topic, first),
        device.publish(topic, first),  # a redelivery must not count the drops twice
        device.publish(topic, v1(device_id, 11, start + timedelta(seconds=30))),
        device.publish(topic, v1(device_id, 12, start + timedelta(seconds=60), dropped=2)),
    ]
    device.wait_acked(mids)
    wait_until(lambda: stored(database, device_id) == 3, 10, what="three readings")
    wait_until(lambda: ingest.metric("iots6_ingest_duplicates_total") >= 1, 10, what="the redelivery absorbed")
    with database.connect() as conn:
        dropped = conn.execute(
            "SELECT seq, dropped FROM sensor_data WHERE device_id = %s ORDER BY seq", (device_id,)
        ).fetchall()
        total, at = conn.execute(
            "SELECT dropped_total, dropped_at FROM devices WHERE device_id = %s", (device_id,)
        ).fetchone()
    assert dropped == [(10, 5), (11, None), (12, 2)]
    assert total == 7 and at == (start + timedelta(seconds=60)).replace(microsecond=start.microsecond // 1000 * 1000)
    assert ingest.metric("iots6_ingest_device_dropped_readings_total") == 7
