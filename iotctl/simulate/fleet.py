"""The simulated fleet: ``count`` nodes named ``<prefix>-0001`` ..., provisioned when needed, run side by side."""

from __future__ import annotations

import random
import threading
import time

from iotctl.errors import InvalidInput
from iotctl.settings import Settings
from iotctl.simulate.firmware import firmware_path
from iotctl.simulate.node import Node, NodeReport

MAX_COUNT = 1000
MAX_RATE_HZ = 20.0


def validate(count: int, rate: float, duration: float | None, prefix: str) -> None:
    from iots6_platform.core import contract

    if not 1 <= count <= MAX_COUNT:
        raise InvalidInput(f"`--count` must be between 1 and {MAX_COUNT}, got {count}; fix the value.")
    if not 0 < rate <= MAX_RATE_HZ:
        raise InvalidInput(f"`--rate` must be above 0 and at most {MAX_RATE_HZ:g} Hz, got {rate:g}; fix the value.")
    if duration is not None and duration <= 0:
        raise InvalidInput(f"`--duration` must be a positive number of seconds, got {duration:g}; fix the value.")
    if not contract.valid_device_id(f"{prefix}-{count:04d}"):
        raise InvalidInput(
            f"`--prefix` `{prefix}` makes invalid device ids; use A-Z, a-z, 0-9, `_` and `-` (at most 59 characters)."
        )


def device_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(1, count + 1)]


class Fleet:
    """``count`` nodes named ``<prefix>-0001`` ...; ``start()`` provisions (when needed) and boots them,
    ``totals()`` is a live summary, ``stop()`` switches them off cleanly and returns a report per node."""

    def __init__(self, settings: Settings, count: int, rate: float = 1.0, prefix: str = "sim", seed: int | None = None):
        validate(count, rate, None, prefix)
        firmware_path()
        self.settings = settings
        self.ids = device_ids(prefix, count)
        self.period_s = 1.0 / rate
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.stop_event = threading.Event()
        self.nodes: list[Node] = []
        self.started_at: float | None = None

    def start(self) -> Fleet:
        from iotctl.devices import ensure_provisioned

        creds = [ensure_provisioned(self.settings, device_id) for device_id in self.ids]
        for i, c in enumerate(creds):
            self.nodes.append(Node(self.settings, c, self.period_s, self.seed + i))
        self.started_at = time.monotonic()
        for node in self.nodes:
            node.start(self.stop_event)
        return self

    def totals(self) -> dict:
        reports = [n.report() for n in self.nodes]
        return {
            "nodes": len(reports),
            "online": sum(r.online for r in reports),
            "published": sum(r.published for r in reports),
            "buffered": sum(r.buffered for r in reports),
            "dropped": sum(r.dropped for r in reports),
        }

    def stop(self, timeout: float = 15.0) -> list[NodeReport]:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if node.thread is not None:
                node.thread.join(max(0.0, deadline - time.monotonic()))
        return [n.report() for n in self.nodes]

    def summary(self, reports: list[NodeReport]) -> dict:
        elapsed = time.monotonic() - self.started_at if self.started_at is not None else 0.0
        return {
            "nodes": len(reports),
            "rate_hz": round(1.0 / self.period_s, 6),
            "elapsed_s": round(elapsed, 3),
            "published": sum(r.published for r in reports),
            "buffered": sum(r.buffered for r in reports),
            "dropped": sum(r.dropped for r in reports),
            "devices": [r.summary() for r in reports],
        }
