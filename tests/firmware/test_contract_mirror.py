"""The firmware's contract mirror (firmware/lib/iots6/contract.py) agrees with iots6_platform.core.contract, and a payload
built by the firmware validates with iots6_platform.core.contract.parse_v1."""

import importlib.util
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from iots6_platform.core import contract

MIRROR_PATH = Path(__file__).resolve().parents[2] / "firmware" / "lib" / "iots6" / "contract.py"


@pytest.fixture(scope="module")
def mirror():
    spec = importlib.util.spec_from_file_location("iots6_contract_mirror", MIRROR_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the mirror imports only json/time, so CPython loads it as it is
    return module


def test_constants(mirror):
    assert mirror.PAYLOAD_VERSION == contract.PAYLOAD_VERSION
    assert mirror.DEFAULT_TOPIC_BASE == contract.DEFAULT_TOPIC_BASE
    assert mirror.MAX_PAYLOAD_BYTES == contract.MAX_PAYLOAD_BYTES
    assert mirror.MAX_FW_LEN == contract.MAX_FW_LEN
    assert contract.EARLIEST_TS.year == mirror.EARLIEST_YEAR
    assert (mirror.TELEMETRY, mirror.EVENT, mirror.STATUS, mirror.CONFIG) == (
        contract.TELEMETRY,
        contract.EVENT,
        contract.STATUS,
        contract.CONFIG,
    )
    assert mirror.EVENT_KINDS == contract.EVENT_KINDS
    assert mirror.STATUS_VALUES == contract.STATUS_VALUES


def test_fields_and_ranges(mirror):
    assert list(mirror.FIELDS) == list(contract.FIELDS)
    for name, spec in contract.FIELDS.items():
        assert mirror.FIELDS[name] == spec[:5], name


@pytest.mark.parametrize("device_id", ["pico-01", "a", "Node_7", "x" * 64, "A-b_C-0"])
@pytest.mark.parametrize("channel", ["telemetry", "event", "status", "config"])
def test_topics_agree(mirror, device_id, channel):
    assert mirror.topic("iots6", device_id, channel) == contract.topic("iots6", device_id, channel)
    assert mirror.topic("site/b", device_id, channel) == contract.topic("site/b", device_id, channel)


@pytest.mark.parametrize("device_id", ["", "a/b", "x" * 65, "sp ace", "+", "#", "é"])
def test_bad_device_ids_rejected_by_both(mirror, device_id):
    assert not mirror.valid_device_id(device_id)
    assert not contract.valid_device_id(device_id)


def _epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def test_firmware_payload_validates(mirror):
    when = datetime(2025, 6, 1, 12, 30, 15, 250000, tzinfo=UTC)
    ts = mirror.format_ts(_epoch_ms(when), time.gmtime)
    assert ts == contract.format_ts(when)
    readings = {"temperature": 21.456, "humidity": 40.0, "pressure": 1006.53, "motion": False, "switch": True}
    data = mirror.build_payload(
        "pico-01", 7, ts, readings, rssi=-60, uptime_s=99, fw="iots6-fw/0.1.0", dropped=2
    )
    reading = contract.parse_v1(mirror.encode(data), "pico-01", contract.TELEMETRY, now=when)
    assert reading.time == when and reading.seq == 7 and reading.kind == contract.KIND_TELEMETRY
    assert reading.temperature == 21.46 and reading.pressure == 1006.53 and reading.switch is True
    assert reading.rssi == -60 and reading.uptime_s == 99 and reading.fw == "iots6-fw/0.1.0"


@pytest.mark.parametrize("event", ["motion", "switch"])
def test_firmware_event_validates(mirror, event):
    when = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    data = mirror.build_payload(
        "pico-01", 8, mirror.format_ts(_epoch_ms(when), time.gmtime), {"motion": True}, event=event
    )
    reading = contract.parse_v1(mirror.encode(data), "pico-01", contract.EVENT, now=when)
    assert reading.kind == event and reading.temperature is None


def test_out_of_range_readings_never_break_the_payload(mirror):
    when = datetime(2025, 6, 1, tzinfo=UTC)
    data = mirror.build_payload(
        "d1",
        1,
        mirror.format_ts(_epoch_ms(when), time.gmtime),
        {"temperature": 999.0, "humidity": float("nan"), "pressure": 5.0},
    )
    reading = contract.parse_v1(mirror.encode(data), "d1", contract.TELEMETRY, now=when)
    assert reading.temperature is None and reading.humidity is None and reading.pressure is None
