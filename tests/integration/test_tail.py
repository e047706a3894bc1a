"""`iotctl tail sensors` against the real Mosquitto of the `broker` fixture.

CLI tests publish *retained* readings before the tail starts (the broker hands them over on subscribe, so
no race with the subscription) and always filter by a device id of their own; the library test publishes
live messages once the subscription is granted.  Retained messages are cleared at the end of each test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from iotctl.cli.main import app
from iotctl.endpoints import MqttEndpoint
from iotctl.mqtt import connect
from iotctl.stack.procs import free_port
from iotctl.tail import ERROR, READING, TailModel, follow
from iots6_platform.core import contract

BASE = "iots6"


def _ts(seconds_ago: int) -> str:
    return contract.format_ts(datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=seconds_ago))


@pytest.fixture
def operator_env(broker, secret_file) -> dict[str, str]:
    username, password = broker.operator
    return {
        "IOTCTL_MQTT_HOST": broker.host,
        "IOTCTL_MQTT_PORT": str(broker.port),
        "IOTCTL_MQTT_USERNAME": username,
        "IOTCTL_MQTT_PASSWORD_FILE": str(secret_file(password)),
        "NO_COLOR": "1",
    }


class Device:
    """A provisioned device publishing on its own topics; clears what it retained on close."""

    def __init__(self, broker, device_id: str):
        self.id = device_id
        password = broker.add_device(device_id)
        self.client = connect(MqttEndpoint(broker.host, broker.port, device_id, password), device_id)
        self.retained: set[str] = set()

    def publish(self, channel: str, payload: str, retain: bool = False) -> None:
        name = contract.topic(BASE, self.id, channel)
        self.client.publish(name, payload, qos=1, retain=retain).wait_for_publish(5)
        if retain:
            self.retained.add(name)

    def close(self) -> None:
        for name in self.retained:
            self.client.publish(name, b"", qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def devices(broker):
    made: list[Device] = []

    def make(device_id: str) -> Device:
        made.append(Device(broker, device_id))
        return made[-1]

    yield make
    for device in made:
        device.close()


def _v1(device_id: str, seq: int, ts: str, **values) -> str:
    data = {
        "v": 1,
        "device_id": device_id,
        "ts": ts,
        "seq": seq,
        "temperature": 21.5,
        "humidity": 40.0,
        "pressure": 1013.2,
        "motion": False,
        "switch": True,
        "rssi": -61,
        "fw": "2.1.0",
    }
    data.update(values)
    return json.dumps(data)


def _legacy(device_id: str, ts: str) -> str:
    return "MQTT event:" + json.dumps(
        {
            "device_id": device_id,
            "event_type": "heartbeat",
            "timestamp": ts,
            "temperature": 72.5,
            "humidity": 45.0,
            "pressure": 29.92,
            "motion": "LOW",
            "switch": "HIGH",
            "wifi_rssi": -70,
            "uptime_seconds": 120,
            "version": "0.9",
        }
    )


def _tail(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, ["tail", "sensors", *args], env=env, catch_exceptions=False)


def test_json_prints_exactly_the_readings_with_converted_units(operator_env, devices, device_id):
    dev = devices(device_id)
    v1_ts, legacy_ts, event_ts = _ts(30), _ts(20), _ts(10)
    dev.publish(contract.TELEMETRY, _v1(device_id, 5, v1_ts), retain=True)
    dev.publish(contract.LEGACY, _legacy(device_id, legacy_ts), retain=True)
    dev.publish(contract.EVENT, _v1(device_id, 6, event_ts, event="motion", motion=True), retain=True)
    dev.publish(contract.STATUS, "online", retain=True)

    result = _tail(operator_env, "--device", device_id, "--json", "--count", "3", "--timeout", "10")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3
    by_ts = {line["ts"]: line for line in lines}
    assert set(by_ts) == {v1_ts, legacy_ts, event_ts}
    assert all(
        set(line)
        == {
            "v",
            "device_id",
            "ts",
            "seq",
            "temperature",
            "humidity",
            "pressure",
            "motion",
            "switch",
            "event",
            "rssi",
            "uptime_s",
            "fw",
        }
        for line in lines
    )
    assert by_ts[v1_ts] == {
        "v": 1,
        "device_id": device_id,
        "ts": v1_ts,
        "seq": 5,
        "temperature": 21.5,
        "humidity": 40.0,
        "pressure": 1013.2,
        "motion": False,
        "switch": True,
        "event": None,
        "rssi": -61,
        "uptime_s": None,
        "fw": "2.1.0",
    }
    legacy = by_ts[legacy_ts]
    assert legacy["temperature"] == pytest.approx(22.5, abs=0.001)  # 72.5 °F
    assert legacy["pressure"] == pytest.approx(1013.2, abs=0.1)  # 29.92 inHg
    assert (
        legacy["humidity"],
        legacy["motion"],
        legacy["switch"],
        legacy["rssi"],
        legacy["uptime_s"],
        legacy["fw"],
        legacy["seq"],
    ) == (45.0, False, True, -70, 120, "0.9", 0)
    assert by_ts[event_ts]["event"] == "motion" and by_ts[event_ts]["motion"] is True


def test_bad_message_is_an_error_line_not_a_crash(operator_env, devices, device_id):
    dev = devices(device_id)
    dev.publish(contract.TELEMETRY, '{"v": 1, "device_id": "' + device_id + '", "ts": "yesterday"}', retain=True)
    dev.publish(contract.LEGACY, _legacy(device_id, _ts(5)), retain=True)

    result = _tail(operator_env, "--device", device_id, "--json", "--count", "1", "--timeout", "10")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [0]
    assert "bad message" in result.stderr and "bad_timestamp" in result.stderr


def test_device_filter(operator_env, devices, device_id):
    other = device_id + "-x"
    devices(device_id).publish(contract.TELEMETRY, _v1(device_id, 1, _ts(3)), retain=True)
    devices(other).publish(contract.TELEMETRY, _v1(other, 1, _ts(3)), retain=True)

    result = _tail(operator_env, "--device", device_id, "--json", "--count", "1", "--timeout", "10")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["device_id"] for line in result.stdout.splitlines()] == [device_id]

    # asking for two readings of one device while only one exists: the other device's reading never counts
    result = CliRunner().invoke(
        app,
        ["tail", "sensors", "--device", device_id, "--json", "--count", "2", "--timeout", "1.5"],
        env=operator_env,
    )
    assert result.exit_code == 1, result.output  # OperationFailed, mapped by the root group
    assert "Only 1 of 2 readings" in result.stderr
    assert [json.loads(line)["device_id"] for line in result.stdout.splitlines()] == [device_id]


def test_plain_lines_when_not_a_tty(operator_env, devices, device_id):
    devices(device_id).publish(contract.TELEMETRY, _v1(device_id, 9, _ts(2)), retain=True)
    result = _tail(operator_env, "--device", device_id, "--count", "1", "--timeout", "10")
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    assert device_id in line and "temperature=21.5 °C" in line and "rssi=-61 dBm" in line


def test_library_follows_live_traffic(broker, devices, device_id):
    dev = devices(device_id)
    operator = MqttEndpoint(broker.host, broker.port, *broker.operator)
    model = TailModel(BASE, device_id)
    updates = []

    def publish_live() -> None:
        dev.publish(contract.STATUS, "online")
        dev.publish(contract.TELEMETRY, _v1(device_id, 1, _ts(4), temperature=20.0))
        dev.publish(contract.TELEMETRY, "not json at all")
        dev.publish(contract.TELEMETRY, _v1(device_id, 2, _ts(1), temperature=20.5))

    publisher = threading.Thread(target=publish_live)
    follow(operator, model, updates.append, count=2, timeout=10, on_ready=publisher.start)
    publisher.join(10)
    assert [u.kind for u in updates if u.kind in (READING, ERROR)] == [READING, ERROR, READING]
    assert [u.reading.seq for u in updates if u.kind == READING] == [1, 2]
    assert model.errors == 1 and "not_json" in model.last_error
    [row] = model.rows()
    assert (row.device, row.status, row.temperature) == (device_id, "online", "20.5 °C")


def test_broker_down_exits_4_with_one_line(operator_env):
    env = {**os.environ, **operator_env, "IOTCTL_MQTT_PORT": str(free_port())}
    result = subprocess.run(
        [sys.executable, "-c", "from iotctl.cli.main import run; run()", "tail", "sensors", "--count", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith("error: Broker `mqtt://127.0.0.1:") and result.stderr.strip().count("\n") == 0
    assert result.stdout == ""
