"""Prometheus metrics of the config server, in a registry per app (tests build many apps in one process).

Under gunicorn every worker counts for itself; ``__main__`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the
workers start, and then ``/metrics`` sums all workers through prometheus_client's multiprocess collector.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "iots6_config_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.fetches = Counter("iots6_config_fetches", "Device configuration fetches answered 200", registry=r)
        self.not_modified = Counter("iots6_config_not_modified", "Device fetches answered 304", registry=r)
        self.auth_failures = Counter(
            "iots6_config_auth_failures", "Requests refused 401/403, by kind", ["kind"], registry=r
        )
        self.notices_published = Counter(
            "iots6_config_notices_published", "Change notices acknowledged by the broker", registry=r
        )
        self.notices_failed = Counter(
            "iots6_config_notices_failed",
            "Change notices that could not be sent (devices still poll)",
            registry=r,
        )
        self.registry_changes = Counter(
            "iots6_config_registry_changes",
            "Device registry changes through the admin API, by action (register, token, retire)",
            ["action"],
            registry=r,
        )
        self.writes = Counter("iots6_config_writes", "Configuration changes committed, by scope", ["scope"], registry=r)

    def exposition(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
