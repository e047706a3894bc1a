"""Two size limits, each visible (docs/contract.md): the contract's 4096-byte payload and the broker's
``max_packet_size``. A message between the two reaches the ingest and is dead-lettered as ``oversized``; a bigger
one is refused by the broker, which says so to the client and in its log. Nothing the broker accepts vanishes.
Published with ``mosquitto_pub`` over MQTT 3.1.1 and 5, as a user would."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from iotctl.stack.mosquitto import MAX_PACKET_SIZE
from iots6_platform.core import contract

from .conftest import count_rows, wait_until
from .outside import mosquitto_pub, registered_device

BASE = contract.DEFAULT_TOPIC_BASE
PROTOCOLS = ["mqttv311", "mqttv5"]


def _reading(device_id: str, size: int) -> str:
    """A valid v1 reading padded with an unknown field to exactly ``size`` bytes."""
    base = {"v": 1, "device_id": device_id, "ts": contract.format_ts(datetime.now(UTC)), "seq": 1, "humidity": 40.0}
    text = json.dumps({**base, "pad": ""})
    return json.dumps({**base, "pad": "x" * (size - len(text))})


def _largest(protocol: str, topic: str) -> int:
    """The largest payload the broker accepts on ``topic`` from this client: Mosquitto counts a packet as its
    remaining length + 1 (not its 1-4 length bytes); libmosquitto, over MQTT 5, counts every byte and will not
    send more than the broker announced."""
    fixed = 2 + len(topic) + 2  # topic length, topic, packet id (QoS 1)
    if protocol == "mqttv311":
        return MAX_PACKET_SIZE - 1 - fixed
    return MAX_PACKET_SIZE - 1 - 3 - fixed - 1  # type byte, 3 length bytes, properties length (no properties)


def _broker_log(broker) -> str:
    return broker.server.log_file.read_text(errors="replace")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_message_over_the_contract_limit_but_under_the_broker_limit_is_dead_lettered(
    ingest, broker, database, device_id, tmp_path, protocol
):
    password = registered_device(broker, database, device_id)
    topic = contract.topic(BASE, device_id, contract.TELEMETRY)
    # The largest the broker takes must also be taken by the ingest's reader, or it would vanish after the PUBACK.
    sizes = (contract.MAX_PAYLOAD_BYTES + 1, 5000, _largest(protocol, topic))
    for size in sizes:
        path = tmp_path / f"reading-{size}.json"
        path.write_text(_reading(device_id, size))
        done = mosquitto_pub(broker, device_id, password, topic, tmp_path, file=path, protocol=protocol)
        assert done.returncode == 0, done.stderr
    wait_until(lambda: count_rows(database, "SELECT count(*) FROM dead_letter") == len(sizes), 15, what="dead letters")
    with database.connect() as conn:
        rows = conn.execute("SELECT reason, length(payload), detail FROM dead_letter ORDER BY id").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("oversized", size) for size in sizes]  # stored whole, as received
    assert all(f"more than {contract.MAX_PAYLOAD_BYTES}" in r[2] for r in rows)
    assert ingest.metric("iots6_ingest_dead_letters_total") == len(sizes)


@pytest.mark.parametrize("size", ["one byte too many", "300 KB"])
def test_a_message_over_the_broker_limit_is_refused_over_mqtt_311_visibly(
    ingest, broker, database, device_id, tmp_path, size
):
    """MQTT 3.1.1 has no way to refuse a PUBLISH: the broker closes the connection, mosquitto_pub fails (no PUBACK
    arrived) and the broker logs why. Before: PUBACK success, exit 0, then nothing anywhere."""
    password = registered_device(broker, database, device_id)
    topic = contract.topic(BASE, device_id, contract.TELEMETRY)
    path = tmp_path / "big.json"
    path.write_text(_reading(device_id, 300_000 if size == "300 KB" else _largest("mqttv311", topic) + 1))
    done = mosquitto_pub(broker, device_id, password, topic, tmp_path, file=path, protocol="mqttv311")
    assert done.returncode != 0 and "connection was lost" in done.stderr.lower(), (done.returncode, done.stderr)
    wait_until(
        lambda: _broker_log(broker).count(f"Client {device_id} disconnected due to oversize packet") == 1,
        5,
        what="the broker's log line",
    )
    assert count_rows(database, "SELECT count(*) FROM dead_letter") == 0
    assert count_rows(database, "SELECT count(*) FROM sensor_data WHERE device_id = %s", (device_id,)) == 0


def test_a_300_kb_message_is_refused_over_mqtt_5_by_the_advertised_limit_or_the_broker(
    ingest, broker, database, device_id, tmp_path
):
    """MQTT 5: the broker announces its limit in CONNACK (Maximum Packet Size). libmosquitto honours it and never
    sends the PUBLISH (mosquitto_pub 2.0.11 then exits 0 without a word: its own quirk, see docs/contract.md); a
    client that ignores it (paho) is disconnected with reason 0x95 Packet too large, and the broker logs it."""
    password = registered_device(broker, database, device_id)
    topic = contract.topic(BASE, device_id, contract.TELEMETRY)
    path = tmp_path / "big.json"
    path.write_text(_reading(device_id, 300_000))
    done = mosquitto_pub(broker, device_id, password, topic, tmp_path, file=path, protocol="mqttv5", debug=True)
    assert "received CONNACK" in done.stdout and "sending PUBLISH" not in done.stdout, done.stdout

    events: list = []
    connected, gone = threading.Event(), threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=paho.MQTTv5)
    client.username_pw_set(device_id, password)
    client.on_connect = lambda _c, _u, _f, _rc, props: (events.append(props.MaximumPacketSize), connected.set())
    client.on_disconnect = lambda _c, _u, _f, rc, _p: (events.append(str(rc)), gone.set())
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert connected.wait(5)
        client.publish(topic, path.read_bytes(), qos=1)
        assert gone.wait(5), "the broker did not disconnect the client"
    finally:
        client.loop_stop()
    assert events == [MAX_PACKET_SIZE, "Packet too large"]
    wait_until(
        lambda: f"Client {device_id} disconnected due to oversize packet" in _broker_log(broker),
        5,
        what="the broker's log line",
    )
    assert count_rows(database, "SELECT count(*) FROM dead_letter") == 0
    assert count_rows(database, "SELECT count(*) FROM sensor_data WHERE device_id = %s", (device_id,)) == 0


def test_broker_configs_use_max_packet_size_not_the_deprecated_limit(tmp_path):
    from iotctl.stack.docker import DockerOptions, DockerStack
    from iotctl.stack.mosquitto import MosquittoServer

    native = MosquittoServer(tmp_path / "native", 1883).render_config()
    DockerStack(tmp_path / "docker").render(DockerOptions())
    docker = (tmp_path / "docker" / "mosquitto" / "config" / "mosquitto.conf").read_text()
    for name, text in (("native", native), ("docker", docker)):
        lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
        assert f"max_packet_size {MAX_PACKET_SIZE}" in lines, name
        assert not any(line.startswith("message_size_limit") for line in lines), name
