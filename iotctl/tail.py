"""Follow the fleet's readings live: subscribe as operator, parse with the contract, one row per device.

:class:`TailModel` is the state (last reading, online/offline, counts) and the row formatting, with no I/O;
:func:`follow` connects, subscribes and feeds it.  The CLI (``iotctl tail sensors``) only renders.
A message that breaks the contract is counted and reported as an error update, never raised.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from iotctl.endpoints import MqttEndpoint
from iotctl.errors import AuthRefused, InvalidInput, OperationFailed
from iots6_platform.core import contract

#: Contract fields a reading carries, in the contract's order (``dropped`` is a device counter, not stored).
JSON_FIELDS = tuple(name for name in contract.FIELDS if name != "dropped")
COLUMNS = ("device", "status", "temperature", "humidity", "pressure", "motion", "switch", "rssi", "fw", "age")

READING, STATUS, ERROR, IGNORED = "reading", "status", "error", "ignored"


def reading_json(reading: contract.Reading) -> dict[str, Any]:
    """One reading as contract payload v1 fields (storage units, ``ts`` RFC 3339 UTC)."""
    return contract.reading_fields(reading)


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _number(value: float | int | None, unit: str, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f} {unit}"


def _flag(value: bool | None, yes: str, no: str) -> str:
    return "-" if value is None else (yes if value else no)


@dataclass
class Update:
    """What one message did: a reading, a status change, an error (bad message) or nothing for us."""

    kind: str  # READING | STATUS | ERROR | IGNORED
    topic: str
    device_id: str | None = None
    reading: contract.Reading | None = None
    status: str | None = None
    error: str | None = None
    # Value fields that broke the contract: stored as NULL by the ingest (docs/contract.md), shown blank here.
    rejected: tuple[contract.FieldRejection, ...] = ()


@dataclass
class DeviceState:
    device_id: str
    reading: contract.Reading | None = None
    status: str | None = None  # online | offline | None (never announced)
    readings: int = 0


@dataclass
class Row:
    device: str
    status: str
    temperature: str
    humidity: str
    pressure: str
    motion: str
    switch: str
    rssi: str
    fw: str
    age: str
    age_s: float | None

    def cells(self) -> tuple[str, ...]:
        return tuple(getattr(self, name) for name in COLUMNS)


@dataclass
class TailModel:
    topic_base: str
    device: str | None = None
    devices: dict[str, DeviceState] = field(default_factory=dict)
    readings: int = 0
    errors: int = 0
    last_error: str | None = None
    rejected_fields: int = 0

    def __post_init__(self):
        if self.device is not None and not contract.valid_device_id(self.device):
            raise InvalidInput(
                f"Device id `{self.device}` is invalid; use 1-64 characters from A-Z, a-z, 0-9, `_` and `-`."
            )

    def subscriptions(self) -> list[str]:
        """Topic filters: every device topic, or the one device's reading and status topics."""
        if self.device is None:
            return [contract.subscription(self.topic_base)]
        channels = (contract.TELEMETRY, contract.EVENT, contract.STATUS, contract.LEGACY)
        return [contract.topic(self.topic_base, self.device, channel) for channel in channels]

    def handle(self, topic: str, payload: bytes | str, now: datetime | None = None) -> Update:
        rejected: list[contract.FieldRejection] = []
        try:
            # Parsed as the ingest parses it: one impossible field costs only itself (the reading is stored).
            parsed, value = contract.parse_message(self.topic_base, topic, payload, now, rejected)
        except contract.ContractError as exc:
            self.errors += 1
            self.last_error = f"{topic}: {exc.reason}: {exc.detail}"
            return Update(ERROR, topic, error=self.last_error)
        if self.device is not None and parsed.device_id != self.device:
            return Update(IGNORED, topic, parsed.device_id)
        if isinstance(value, contract.Reading):
            state = self.devices.setdefault(parsed.device_id, DeviceState(parsed.device_id))
            state.reading = value
            state.readings += 1
            self.readings += 1
            self.rejected_fields += len(rejected)
            return Update(READING, topic, parsed.device_id, reading=value, rejected=tuple(rejected))
        if isinstance(value, str):
            self.devices.setdefault(parsed.device_id, DeviceState(parsed.device_id)).status = value
            return Update(STATUS, topic, parsed.device_id, status=value)
        return Update(IGNORED, topic, parsed.device_id)

    def rows(self, now: datetime | None = None) -> list[Row]:
        now = now or datetime.now(UTC)
        rows = []
        for device_id in sorted(self.devices):
            state = self.devices[device_id]
            r = state.reading
            age = (now - r.time).total_seconds() if r else None
            rows.append(
                Row(
                    device=device_id,
                    status=state.status or "-",
                    temperature=_number(r and r.temperature, "°C"),
                    humidity=_number(r and r.humidity, "%RH"),
                    pressure=_number(r and r.pressure, "hPa"),
                    motion=_flag(r and r.motion, "motion", "still"),
                    switch=_flag(r and r.switch, "closed", "open"),
                    rssi=_number(r and r.rssi, "dBm", 0),
                    fw=(r.fw if r and r.fw else "-"),
                    age=format_age(age),
                    age_s=None if age is None else max(0.0, age),
                )
            )
        return rows


def plain_line(reading: contract.Reading) -> str:
    """One reading on one line, for a pipe (no table)."""
    kind = "" if reading.kind == contract.KIND_TELEMETRY else f" {reading.kind}"
    return (
        f"{contract.format_ts(reading.time)} {reading.device_id}{kind}"
        f" temperature={_number(reading.temperature, '°C')} humidity={_number(reading.humidity, '%RH')}"
        f" pressure={_number(reading.pressure, 'hPa')} motion={_flag(reading.motion, 'motion', 'still')}"
        f" switch={_flag(reading.switch, 'closed', 'open')} rssi={_number(reading.rssi, 'dBm', 0)}"
        f" fw={reading.fw or '-'}"
    )


def follow(
    endpoint: MqttEndpoint,
    model: TailModel,
    on_update: Callable[[Update], None],
    *,
    count: int | None = None,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[], None] | None = None,
    on_tick: Callable[[], None] | None = None,
    tick: float = 0.25,
) -> TailModel:
    """Subscribe and feed ``model`` until ``count`` readings, ``timeout`` seconds, or ``stop`` is set.

    ``on_ready`` runs once the broker granted the subscriptions; ``on_tick`` at least every ``tick`` seconds.
    Raises OperationFailed when ``count`` was asked for and ``timeout`` passed first.
    """
    from iotctl.mqtt import connect

    messages: queue.Queue = queue.Queue()
    granted = threading.Event()
    refused: list[str] = []

    def on_message(_client, _userdata, message) -> None:
        messages.put((message.topic, message.payload))

    def on_subscribe(_client, _userdata, _mid, reason_codes, _props) -> None:
        refused.extend(str(rc) for rc in reason_codes if rc.is_failure)
        granted.set()

    client = connect(endpoint, on_message=on_message)
    try:
        client.on_subscribe = on_subscribe
        client.subscribe([(name, 1) for name in model.subscriptions()])
        if not granted.wait(5.0):
            raise OperationFailed(
                f"Broker `{endpoint.host}:{endpoint.port}` did not confirm the subscription in 5 s; retry."
            )
        if refused:
            raise AuthRefused(
                f"Broker refused account `{endpoint.username}` a subscription to "
                f"`{model.topic_base}` ({refused[0]}); use the operator account."
            )
        if on_ready:
            on_ready()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (stop and stop.is_set()):
            if count is not None and model.readings >= count:
                break
            wait = tick
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    if count is not None:
                        raise OperationFailed(
                            f"Only {model.readings} of {count} readings arrived on `{model.topic_base}` "
                            f"within {timeout:g} s; check that the devices publish, or raise --timeout."
                        )
                    break
            try:
                topic, payload = messages.get(timeout=wait)
            except queue.Empty:
                if on_tick:
                    on_tick()
                continue
            on_update(model.handle(topic, payload))
            if on_tick:
                on_tick()
    finally:
        client.disconnect()
        client.loop_stop()
    return model
