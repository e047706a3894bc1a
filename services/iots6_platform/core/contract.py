"""The one contract between devices, ingest, simulator, tail and tests: topics, payloads, units.

Everything that names a topic or reads a payload imports this module; the firmware mirrors it in
``firmware/lib/iots6/contract.py`` and a test proves the two agree.  Documented in ``docs/contract.md``; the JSON
Schema in ``docs/contract.schema.json`` is generated from :data:`FIELDS` by :func:`json_schema`.

Topics (``<base>`` defaults to ``iots6``):

* ``<base>/<device_id>/telemetry``: periodic readings, payload v1, QoS 1.
* ``<base>/<device_id>/event``: a motion or switch edge, payload v1 with ``event`` set, QoS 1.
* ``<base>/<device_id>/status``: retained ``online`` / ``no_clock`` (connected, clock not set) / ``offline`` (the
  last will).
* ``<base>/<device_id>/config``: retained config-change notice from the config server (devices read it).
* ``<base>/<device_id>``: the older Pico firmware's JSON (see :func:`parse_legacy`), converted on ingest.

Units in storage and in payload v1: temperature °C, humidity %RH, pressure hPa, rssi dBm.

A message breaks the contract as a whole (:class:`ContractError`, dead-lettered) when it cannot be read or a
field that identifies the reading is wrong (``v``, ``device_id``, ``ts``, ``seq``, ``event``).  A wrong *value*
field (a measurement, ``rssi``, ``uptime_s``, ``fw``, ``dropped``) costs only that field when the caller passes a
``rejected`` list: the field becomes None and a :class:`FieldRejection` says why, so one bad sensor does not lose
the rest of the reading.  A message left with no usable value at all is still a ContractError.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

PAYLOAD_VERSION = 1
DEFAULT_TOPIC_BASE = "iots6"
DEVICE_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN + r"\Z")
#: Largest payload accepted, in bytes. A v1 reading is ~250 bytes; the legacy format ~400.
MAX_PAYLOAD_BYTES = 4096
#: Deepest JSON nesting accepted (the payload object itself is level 1; a v1 reading needs 1). Deeper is
#: ``malformed``: a fixed limit instead of whatever Python's recursion limit allows at the time.
MAX_JSON_DEPTH = 32
#: Timestamps before this are a device whose clock was never set (RP2040 RTC starts at 2021-01-01).
EARLIEST_TS = datetime(2022, 1, 1, tzinfo=UTC)
#: How far ahead of the receiver's clock a device timestamp may be.
MAX_CLOCK_SKEW = timedelta(minutes=10)

TELEMETRY = "telemetry"
EVENT = "event"
STATUS = "status"
CONFIG = "config"
LEGACY = "legacy"
#: Kinds of reading stored in ``sensor_data.kind``.
KIND_TELEMETRY = "telemetry"
KIND_MOTION = "motion"
KIND_SWITCH = "switch"
EVENT_KINDS = (KIND_MOTION, KIND_SWITCH)
#: Retained status texts: ``no_clock`` is a connected device whose clock is not set yet (firmware 0.2 holds its
#: readings, dated later); ``offline`` is the last will.
STATUS_VALUES = ("online", "offline", "no_clock")

#: Payload v1 fields: name -> (json type, unit, minimum, maximum, required, description).
#: Ranges are what any supported sensor can physically report; a value outside is rejected with a reason.
FIELDS: dict[str, tuple[str, str | None, float | None, float | None, bool, str]] = {
    "v": ("integer", None, 1, 1, False, "payload version; 1 when absent"),
    "device_id": (
        "string",
        None,
        None,
        None,
        True,
        "the publishing device; must equal the topic's device id",
    ),
    "ts": ("string", None, None, None, True, "time of the reading, RFC 3339 in UTC (`Z` or `+00:00`)"),
    "seq": (
        "integer",
        None,
        0,
        2**63 - 1,
        True,
        "per-device counter: +1 per message, never repeats (may jump ahead after a reboot)",
    ),
    "temperature": ("number", "°C", -50.0, 125.0, False, "air temperature; null when no sensor"),
    "humidity": ("number", "%RH", 0.0, 100.0, False, "relative humidity; null when no sensor"),
    "pressure": ("number", "hPa", 300.0, 1100.0, False, "barometric pressure; null when no sensor"),
    "motion": ("boolean", None, None, None, False, "PIR state; null when unknown"),
    "switch": ("boolean", None, None, None, False, "switch/reed state, true = closed; null when unknown"),
    "event": (
        "string",
        None,
        None,
        None,
        False,
        "on the event topic: `motion` or `switch`, the input that changed",
    ),
    "rssi": ("integer", "dBm", -127, 0, False, "Wi-Fi signal strength"),
    "uptime_s": ("integer", "s", 0, 2**31 - 1, False, "seconds since boot"),
    "fw": ("string", None, None, None, False, "firmware version, at most 32 characters"),
    "dropped": (
        "integer",
        None,
        0,
        2**31 - 1,
        False,
        "readings dropped from a full offline buffer since last sent",
    ),
}
MAX_FW_LEN = 32

#: Columns of ``sensor_data`` in the order :class:`Reading` holds them (and COPY writes them).
READING_COLUMNS = (
    "time",
    "device_id",
    "kind",
    "seq",
    "temperature",
    "humidity",
    "pressure",
    "motion",
    "switch",
    "rssi",
    "uptime_s",
    "fw",
    "dropped",
)


class Reading(NamedTuple):
    """One validated reading, in storage units, ready to be written."""

    time: datetime
    device_id: str
    kind: str
    seq: int
    temperature: float | None
    humidity: float | None
    pressure: float | None
    motion: bool | None
    switch: bool | None
    rssi: int | None
    uptime_s: int | None
    fw: str | None
    dropped: int | None = None  # readings the device reports it dropped since its previous message


#: Fields that cost only themselves when wrong (given a ``rejected`` list); the rest reject the whole message.
VALUE_FIELDS = ("temperature", "humidity", "pressure", "motion", "switch", "rssi", "uptime_s", "fw", "dropped")


class FieldRejection(NamedTuple):
    """One value field set to None because it broke the contract: recorded in ``rejected_field``."""

    field: str  # the storage column (for the legacy format too: `rssi`, not `wifi_rssi`)
    raw: str  # the value as sent, as JSON text (at most 200 characters)
    reason: str  # impossible_value | bad_type | double_converted
    detail: str


class ContractError(ValueError):
    """A payload or topic that breaks the contract. ``reason`` is a short code stored in ``dead_letter``."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Topic(NamedTuple):
    device_id: str
    channel: str  # one of TELEMETRY, EVENT, STATUS, CONFIG, LEGACY


# --------------------------------------------------------------------------------------------------- topics


def valid_device_id(device_id: str) -> bool:
    return isinstance(device_id, str) and DEVICE_ID_RE.match(device_id) is not None


def topic(base: str, device_id: str, channel: str) -> str:
    """The topic for ``channel`` of ``device_id``; ``channel`` LEGACY gives ``<base>/<device_id>``."""
    if not valid_device_id(device_id):
        raise ContractError("bad_device_id", f"device id {device_id!r} does not match {DEVICE_ID_PATTERN}")
    if channel == LEGACY:
        return f"{base}/{device_id}"
    if channel not in (TELEMETRY, EVENT, STATUS, CONFIG):
        raise ValueError(f"unknown channel {channel!r}")
    return f"{base}/{device_id}/{channel}"


def subscription(base: str) -> str:
    """The filter that covers every device topic (ingest adds ``$share/<group>/`` in front)."""
    return f"{base}/#"


def parse_topic(base: str, name: str) -> Topic:
    """Split a topic into device id and channel, or raise ContractError('bad_topic')."""
    prefix = base + "/"
    if not name.startswith(prefix):
        raise ContractError("bad_topic", f"topic {name!r} is not under {base!r}")
    parts = name[len(prefix) :].split("/")
    if len(parts) == 1:
        device_id, channel = parts[0], LEGACY
    elif len(parts) == 2 and parts[1] in (TELEMETRY, EVENT, STATUS, CONFIG):
        device_id, channel = parts
    else:
        raise ContractError("bad_topic", f"topic {name!r} is not {base}/<device_id>[/telemetry|/event|/status|/config]")
    if not valid_device_id(device_id):
        raise ContractError("bad_device_id", f"device id {device_id!r} does not match {DEVICE_ID_PATTERN}")
    return Topic(device_id, channel)


# --------------------------------------------------------------------------------------------------- values


def format_ts(when: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, millisecond precision."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(raw: Any, now: datetime | None = None) -> datetime:
    if not isinstance(raw, str):
        raise ContractError("bad_type", f"ts must be an RFC 3339 string, got {type(raw).__name__}")
    if len(raw) < 20 or raw[10] not in "Tt" or not (raw.endswith(("Z", "z", "+00:00"))):
        raise ContractError("bad_timestamp", f"ts {raw!r} is not RFC 3339 in UTC (YYYY-MM-DDTHH:MM:SS[.fff]Z)")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ContractError("bad_timestamp", f"ts {raw!r} is not a valid RFC 3339 time") from None
    if when < EARLIEST_TS:
        raise ContractError("clock_not_set", f"ts {raw} is before {EARLIEST_TS.date()}: the device clock is not set")
    if when > (now or datetime.now(UTC)) + MAX_CLOCK_SKEW:
        raise ContractError("future_timestamp", f"ts {raw} is more than {MAX_CLOCK_SKEW} ahead of the receiver")
    return when


def _number(name: str, raw: Any) -> float | None:
    if raw is None:
        return None
    # bool is an int subclass in Python; a JSON true is not a temperature.
    if raw.__class__ not in (int, float):
        raise ContractError("bad_type", f"{name} must be a number or null, got {type(raw).__name__}")
    lo, hi = FIELDS[name][2], FIELDS[name][3]
    if not lo <= raw <= hi:  # also false for NaN
        unit = FIELDS[name][1]
        raise ContractError("impossible_value", f"{name} {raw} {unit} is outside {lo}..{hi} {unit}")
    return float(raw)


def _integer(name: str, raw: Any, required: bool = False) -> int | None:
    if raw is None:
        if required:
            raise ContractError("missing_field", f"{name} is required")
        return None
    if raw.__class__ is not int:
        raise ContractError("bad_type", f"{name} must be an integer, got {type(raw).__name__}")
    lo, hi = FIELDS[name][2], FIELDS[name][3]
    if not lo <= raw <= hi:
        raise ContractError("impossible_value", f"{name} {raw} is outside {lo}..{hi}")
    return raw


def _boolean(name: str, raw: Any) -> bool | None:
    if raw is None or raw is True or raw is False:
        return raw
    raise ContractError("bad_type", f"{name} must be true, false or null, got {type(raw).__name__}")


def _fw(name: str, raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > MAX_FW_LEN:
        raise ContractError("bad_type", f"{name} must be a string of at most {MAX_FW_LEN} characters")
    return raw


def _brief(value: Any) -> str:
    """A value for a one-line detail: scalars as themselves (cut at 40 characters), containers by type only."""
    if value is None or value.__class__ in (bool, int, float, str):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"


def _raw_text(value: Any) -> str:
    """The value as sent, as JSON text, for the ``rejected_field`` table (at most 200 characters)."""
    return json.dumps(value, ensure_ascii=False)[:200]


class _Fields:
    """Checks a message's value fields: strict (raise) without a ``rejected`` list, else null-and-record."""

    def __init__(self, rejected: list[FieldRejection] | None):
        self.lenient = rejected is not None
        self.rejected: list[FieldRejection] = []

    def check(self, check, name: str, raw: Any, *args):
        try:
            return check(name, raw, *args)
        except ContractError as exc:
            if not self.lenient:
                raise
            self.rejected.append(FieldRejection(name, _raw_text(raw), exc.reason, exc.detail))
            return None

    def finish(self, reading: Reading, rejected: list[FieldRejection] | None) -> Reading:
        """Hand the rejections to the caller, unless nothing usable is left (then the whole message goes)."""
        if self.rejected:
            usable = reading.kind != KIND_TELEMETRY or any(getattr(reading, f) is not None for f in VALUE_FIELDS)
            if not usable:
                first = self.rejected[0]
                details = "; ".join(r.detail for r in self.rejected)
                raise ContractError(first.reason, f"{details}; no other value is usable")
            rejected.extend(self.rejected)
        return reading


# --------------------------------------------------------------------------------------------------- payloads


def json_depth(value: Any) -> int:
    """How deeply ``value`` nests (a scalar is 0, ``{}`` and ``[]`` are 1), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _too_deep() -> ContractError:
    return ContractError("malformed", f"payload nests JSON deeper than {MAX_JSON_DEPTH} levels")


def _load_object(payload: bytes | str) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"payload is {len(payload)} bytes, more than {MAX_PAYLOAD_BYTES}")
    try:
        data = json.loads(payload)
    except RecursionError:  # nested deeper than the parser's recursion allows
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError("not_json", f"payload is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ContractError("not_object", f"payload is a JSON {type(data).__name__}, not an object")
    # Only a payload with more brackets than the limit can nest that deep: the scan is skipped for readings.
    brackets = (b"[", b"{") if isinstance(payload, bytes | bytearray) else ("[", "{")
    if payload.count(brackets[0]) + payload.count(brackets[1]) > MAX_JSON_DEPTH and json_depth(data) > MAX_JSON_DEPTH:
        raise _too_deep()
    return data


def _check_device(data: dict[str, Any], topic_device: str) -> str:
    device_id = data.get("device_id")
    if device_id is None:
        raise ContractError("missing_field", "device_id is required")
    if device_id != topic_device:
        raise ContractError(
            "device_mismatch", f"payload device_id {_brief(device_id)} differs from topic's {topic_device!r}"
        )
    return device_id


def parse_v1(
    payload: bytes | str,
    topic_device: str,
    channel: str,
    now: datetime | None = None,
    rejected: list[FieldRejection] | None = None,
) -> Reading:
    """Validate a payload v1 published on ``<base>/<topic_device>/<channel>`` and return a Reading.

    With a ``rejected`` list, a wrong value field is set to None and recorded there instead of rejecting the
    message (see the module docstring); without one, any wrong field raises ContractError.
    """
    data = _load_object(payload)
    version = data.get("v", 1)
    if version != PAYLOAD_VERSION or version.__class__ is not int:
        raise ContractError("bad_version", f"payload version {_brief(version)} is not supported (expected 1)")
    device_id = _check_device(data, topic_device)
    if "ts" not in data:
        raise ContractError("missing_field", "ts is required")
    when = parse_ts(data["ts"], now)
    if channel == EVENT:
        kind = data.get("event")
        if kind not in EVENT_KINDS:
            raise ContractError("bad_event", f"event must be one of {', '.join(EVENT_KINDS)}, got {_brief(kind)}")
    else:
        kind = KIND_TELEMETRY
    seq = _integer("seq", data.get("seq"), required=True)
    fields = _Fields(rejected)
    reading = Reading(
        when,
        device_id,
        kind,
        seq,
        fields.check(_number, "temperature", data.get("temperature")),
        fields.check(_number, "humidity", data.get("humidity")),
        fields.check(_number, "pressure", data.get("pressure")),
        fields.check(_boolean, "motion", data.get("motion")),
        fields.check(_boolean, "switch", data.get("switch")),
        fields.check(_integer, "rssi", data.get("rssi")),
        fields.check(_integer, "uptime_s", data.get("uptime_s")),
        fields.check(_fw, "fw", data.get("fw")),
        fields.check(_integer, "dropped", data.get("dropped")),
    )
    return fields.finish(reading, rejected)


LEGACY_PREFIX = "MQTT event:"
_LEGACY_KINDS = {"heartbeat": KIND_TELEMETRY, "motion": KIND_MOTION, "switch": KIND_SWITCH}
_LEGACY_STATES = {"HIGH": True, "LOW": False, "UNKNOWN": None}
INHG_TO_HPA = 33.8638866667
#: A recovered double-converted pressure (see :func:`_legacy_pressure`) must be known to this many hPa from the
#: digits sent; with the factor's own uncertainty and rounding to 0.01 hPa it is then within 0.01 hPa of the sensor.
RECOVERY_TOLERANCE_HPA = 0.004


def fahrenheit_to_celsius(value: float) -> float:
    return (value - 32.0) * 5.0 / 9.0


def inhg_to_hpa(value: float) -> float:
    return value * INHG_TO_HPA


def _legacy_number(name: str, raw: Any, convert) -> float | None:
    if raw is None:
        return None
    if raw.__class__ not in (int, float):
        raise ContractError("bad_type", f"legacy {name} must be a number, got {type(raw).__name__}")
    return _number(name, round(convert(raw), 3))


def _half_unit(value: float) -> float:
    """Half a unit of the last decimal digit of ``value`` as sent: the most it can differ from what was meant.

    ``repr`` is the shortest text that reads back as the same float, never longer than what the device wrote, so
    this errs on the side of less precision (trailing zeros the device sent are not counted).
    """
    return 0.5 * 10.0 ** Decimal(repr(float(value))).as_tuple().exponent


def _legacy_pressure(name: str, raw: Any) -> float | None:
    """inHg -> hPa, recovering the older firmware's double conversion only when that is exact.

    That firmware's BME280 path divides hPa by 33.8639 twice, so 1009.2 hPa arrives as 0.88 (29.8 hPa after one
    conversion: impossible).  The two ranges cannot overlap (300..1100 hPa is 8.86..32.48 inHg once, 0.26..0.96
    twice), so a double conversion is recognised for certain; it is undone only when the digits sent fix the hPa
    value to RECOVERY_TOLERANCE_HPA (six decimals or more), else the field is rejected as ``double_converted``.
    """
    if raw is None or raw.__class__ not in (int, float):
        return _legacy_number(name, raw, inhg_to_hpa)
    lo, hi = FIELDS[name][2], FIELDS[name][3]
    once, twice = raw * INHG_TO_HPA, raw * INHG_TO_HPA**2
    if not lo <= once <= hi and lo <= twice <= hi:
        uncertainty = _half_unit(raw) * INHG_TO_HPA**2
        if uncertainty > RECOVERY_TOLERANCE_HPA:
            raise ContractError(
                "double_converted",
                f"pressure {raw} inHg is hPa converted to inHg twice (older firmware); its digits give the hPa "
                f"value only to ±{uncertainty:.2g} hPa, so it is not recovered",
            )
        return round(twice, 2)
    return _legacy_number(name, raw, inhg_to_hpa)


def _legacy_state(name: str, raw: Any) -> bool | None:
    if not isinstance(raw, str) or raw not in _LEGACY_STATES:  # (a list is not even hashable)
        raise ContractError("bad_type", f"legacy {name} must be HIGH, LOW or UNKNOWN, got {_brief(raw)}")
    return _LEGACY_STATES[raw]


def parse_legacy(
    payload: bytes | str,
    topic_device: str,
    now: datetime | None = None,
    rejected: list[FieldRejection] | None = None,
) -> Reading:
    """Convert the older Pico firmware's JSON (°F, inHg, "HIGH"/"LOW") into a Reading.

    It may be prefixed with the text ``MQTT event:``.  It has no sequence number, so ``seq`` is 0 and a
    redelivery is recognised by (device, time, kind) alone; its timestamps have one-second resolution.
    ``rejected`` as for :func:`parse_v1`.
    """
    if isinstance(payload, bytes | bytearray):
        payload = bytes(payload)
        if payload.startswith(LEGACY_PREFIX.encode()):
            payload = payload[len(LEGACY_PREFIX) :]
    elif payload.startswith(LEGACY_PREFIX):
        payload = payload[len(LEGACY_PREFIX) :]
    data = _load_object(payload)
    device_id = _check_device(data, topic_device)
    event_type = data.get("event_type")
    if not isinstance(event_type, str) or event_type not in _LEGACY_KINDS:
        raise ContractError("bad_event", f"event_type must be heartbeat, motion or switch, got {_brief(event_type)}")
    if "timestamp" not in data:
        raise ContractError("missing_field", "timestamp is required")
    when = parse_ts(data["timestamp"], now)
    fields = _Fields(rejected)
    reading = Reading(
        when,
        device_id,
        _LEGACY_KINDS[event_type],
        0,
        fields.check(_legacy_number, "temperature", data.get("temperature"), fahrenheit_to_celsius),
        fields.check(_legacy_number, "humidity", data.get("humidity"), float),
        fields.check(_legacy_pressure, "pressure", data.get("pressure")),
        fields.check(_legacy_state, "motion", data.get("motion", "UNKNOWN")),
        fields.check(_legacy_state, "switch", data.get("switch", "UNKNOWN")),
        fields.check(_integer, "rssi", data.get("wifi_rssi")),
        fields.check(_integer, "uptime_s", data.get("uptime_seconds")),
        fields.check(_fw, "fw", data.get("version")),
    )
    return fields.finish(reading, rejected)


def parse_message(
    base: str,
    topic_name: str,
    payload: bytes | str,
    now: datetime | None = None,
    rejected: list[FieldRejection] | None = None,
):
    """Parse one message. Returns ``(Topic, Reading | str | None)``.

    A reading channel gives a Reading; the status channel gives ``"online"``/``"offline"``; the config channel
    (notices for devices) gives None.  Anything that breaks the contract raises ContractError; with a
    ``rejected`` list, a wrong value field of a reading is set to None and recorded there instead.
    """
    parsed = parse_topic(base, topic_name)
    channel = parsed.channel
    if channel in (TELEMETRY, EVENT):
        return parsed, parse_v1(payload, parsed.device_id, channel, now, rejected)
    if channel == LEGACY:
        return parsed, parse_legacy(payload, parsed.device_id, now, rejected)
    if channel == STATUS:
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes | bytearray) else payload
        if text not in STATUS_VALUES:
            raise ContractError("bad_status", f"status must be one of {', '.join(STATUS_VALUES)}, got {text[:40]!r}")
        return parsed, text
    return parsed, None


def reading_fields(reading: Reading) -> dict[str, Any]:
    """Every payload v1 field of a Reading (``event`` is None for telemetry), in contract order."""
    return {
        "v": PAYLOAD_VERSION,
        "device_id": reading.device_id,
        "ts": format_ts(reading.time),
        "seq": reading.seq,
        "temperature": reading.temperature,
        "humidity": reading.humidity,
        "pressure": reading.pressure,
        "motion": reading.motion,
        "switch": reading.switch,
        "event": None if reading.kind == KIND_TELEMETRY else reading.kind,
        "rssi": reading.rssi,
        "uptime_s": reading.uptime_s,
        "fw": reading.fw,
    }


def make_payload(reading: Reading, **extra: Any) -> str:
    """Payload v1 JSON for a Reading (used by the simulator, tests and docs); absent optional fields omitted."""
    data = reading_fields(reading)
    for name in ("event", "rssi", "uptime_s", "fw"):
        if data[name] is None:
            del data[name]
    if reading.dropped is not None:
        data["dropped"] = reading.dropped
    data.update(extra)
    return json.dumps(data, separators=(",", ":"))


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of payload v1, generated from FIELDS."""
    props: dict[str, Any] = {}
    for name, (type_, unit, lo, hi, _required, doc) in FIELDS.items():
        prop: dict[str, Any] = {"description": doc + (f" ({unit})" if unit else "")}
        if type_ in ("number", "boolean") and name not in ("v",):
            prop["type"] = [type_, "null"]
        else:
            prop["type"] = type_
        if lo is not None:
            prop["minimum"] = lo
        if hi is not None:
            prop["maximum"] = hi
        props[name] = prop
    props["device_id"]["pattern"] = "^" + DEVICE_ID_PATTERN + "$"
    props["ts"]["format"] = "date-time"
    props["event"]["enum"] = list(EVENT_KINDS)
    props["fw"]["maxLength"] = MAX_FW_LEN
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://iotctl.dev/schema/payload-v1.json",
        "title": "iots6 payload v1",
        "description": "A reading published on <base>/<device_id>/telemetry or /event. Unknown fields are ignored.",
        "type": "object",
        "required": [n for n, f in FIELDS.items() if f[4]],
        "properties": props,
        "additionalProperties": True,
    }


if __name__ == "__main__":  # python -m iots6_platform.core.contract > docs/contract.schema.json
    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
