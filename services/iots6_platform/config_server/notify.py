"""Retained change notices on ``<base>/<device_id>/config``: one long-lived paho client per process.

Publishing never fails a write: the client connects in the background and reconnects by itself; a notice that
cannot be queued is logged and counted (``iots6_config_notices_failed``).  Devices also poll, and the notice
is retained, so a device that was offline sees the newest one when it reconnects.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from iots6_platform.core import contract

log = logging.getLogger("iots6.config_server.notify")

#: Notices kept in memory while the broker is away; beyond that they are dropped (and counted as failed).
MAX_QUEUED = 10_000


class Notifier:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        topic_base: str,
        metrics,
        protocol: str = "5",
    ) -> None:
        self.host, self.port, self.topic_base, self.metrics = host, port, topic_base, metrics
        client_id = f"iots6-config-{socket.gethostname()[:20]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if protocol == "5" else paho.MQTTv311,
        )
        self.client.username_pw_set(username, password)
        self.client.max_queued_messages_set(MAX_QUEUED)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.connected = False

    def start(self) -> None:
        try:
            self.client.connect_async(self.host, self.port, keepalive=30)
        except (OSError, ValueError) as exc:
            log.warning("broker %s:%s: %s; notices will be retried", self.host, self.port, exc)
        self.client.loop_start()

    def _on_connect(self, _client, _userdata, _flags, reason_code, _props) -> None:
        self.connected = not reason_code.is_failure
        if reason_code.is_failure:
            log.warning("broker %s:%s refused the config server: %s", self.host, self.port, reason_code)
        else:
            log.info("connected to broker %s:%s", self.host, self.port)

    def _on_publish(self, _client, _userdata, _mid, reason_code, _props) -> None:
        if reason_code.is_failure:
            self.metrics.notices_failed.inc()
            log.warning("broker refused a config notice: %s", reason_code)
        else:
            self.metrics.notices_published.inc()

    def notify(self, device_id: str, version: int, etag: str) -> bool:
        """Queue a retained QoS 1 notice; True when handed to the broker connection. Never raises."""
        try:
            topic = contract.topic(self.topic_base, device_id, contract.CONFIG)
            payload = json.dumps({"version": version, "etag": etag}, separators=(",", ":"))
            info = self.client.publish(topic, payload, qos=1, retain=True)
        except Exception:  # a notice must never fail the write that caused it
            log.exception("config notice for %s could not be published", device_id)
            self.metrics.notices_failed.inc()
            return False
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.warning("config notice for %s not sent now (%s); the device will poll", device_id, info.rc)
            self.metrics.notices_failed.inc()
            return False
        return True

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
