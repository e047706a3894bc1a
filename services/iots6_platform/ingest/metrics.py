"""Prometheus metrics of the ingest (served on /metrics), in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECEIVED = Counter("iots6_ingest_messages_received", "MQTT messages received", registry=REGISTRY)
STORED = Counter("iots6_ingest_readings_stored", "Readings committed to sensor_data", registry=REGISTRY)
DUPLICATES = Counter("iots6_ingest_duplicates", "Redelivered readings absorbed by the unique key", registry=REGISTRY)
DEAD_LETTERS = Counter(
    "iots6_ingest_dead_letters", "Messages written to dead_letter, by reason", ["reason"], registry=REGISTRY
)
REJECTED_FIELDS = Counter(
    "iots6_ingest_rejected_fields",
    "Values set to NULL in otherwise stored readings (recorded in rejected_field), by field and reason",
    ["field", "reason"],
    registry=REGISTRY,
)
DEVICE_DROPPED = Counter(
    "iots6_ingest_device_dropped_readings",
    "Readings devices reported dropping before sending (the `dropped` field of stored readings)",
    registry=REGISTRY,
)
DB_ERRORS = Counter("iots6_ingest_db_errors", "Failed batch writes (retried)", registry=REGISTRY)
BATCH_SIZE = Histogram(
    "iots6_ingest_batch_size",
    "Messages per committed batch",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "iots6_ingest_batch_seconds",
    "Time to write and commit one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
COMMIT_LAG = Histogram(
    "iots6_ingest_commit_lag_seconds",
    "From receiving the oldest message of a batch to its commit",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
MQTT_CONNECTED = Gauge("iots6_ingest_mqtt_connected", "1 while connected to the broker", registry=REGISTRY)
