"""A thin, robust wrapper over micropython-lib's ``umqtt.simple`` client.

On every connect: last will = retained ``offline`` on the status topic, then a retained ``online``, then a
subscription to the device's own config topic (clean session, so it is renewed each time; the notice is retained,
so a reconnect also triggers a config check).  Publishes use QoS 1: ``umqtt.simple.publish`` returns only after
the broker's PUBACK, so a message that returned can be dropped from the offline buffer.  Any OSError marks the
connection lost; the caller reconnects with backoff.
"""

from iots6 import contract
from iots6.backoff import Backoff

try:
    # micropython-lib's umqtt.simple raises MQTTException (a plain Exception, not an OSError) when the broker
    # refuses the login or answers garbage: e.g. right after provisioning, before Mosquitto re-read its files.
    from umqtt.simple import MQTTException
except ImportError:  # host-side tests and the simulator inject clients whose errors are OSErrors
    MQTTException = OSError

# Everything that means "the link is gone or unusable": the caller backs off and reconnects, never crashes.
LINK_ERRORS = (OSError, IndexError, MQTTException)


class Mqtt:
    def __init__(self, client_factory, device_id, base, clock, keepalive_s=60, on_config=None, backoff=None):
        """``client_factory()`` returns a new ``umqtt.simple.MQTTClient`` (or a fake) configured for the broker."""
        self.client_factory = client_factory
        self.device_id = device_id
        self.clock = clock
        self.keepalive_ms = keepalive_s * 1000
        self.on_config = on_config
        self.backoff = backoff or Backoff(2000, 120000)
        self.client = None
        self.connected = False
        self.next_try = None
        self.last_traffic = None
        self.last_error = None
        self.status_topic = contract.topic(base, device_id, contract.STATUS)
        self.config_topic = contract.topic(base, device_id, contract.CONFIG)
        self.topics = {}
        for channel in (contract.TELEMETRY, contract.EVENT):
            self.topics[channel] = contract.topic(base, device_id, channel)

    def _on_message(self, topic, msg):
        if isinstance(topic, bytes):
            topic = topic.decode()
        if topic == self.config_topic and self.on_config is not None:
            self.on_config(msg)

    def due(self):
        return self.next_try is None or self.clock.ticks_diff(self.clock.ticks_ms(), self.next_try) >= 0

    def connect(self):
        """One connection attempt; returns True when connected. Never raises OSError."""
        self.close()
        try:
            client = self.client_factory()
            client.set_last_will(self.status_topic, contract.STATUS_OFFLINE.encode(), retain=True, qos=1)
            client.set_callback(self._on_message)
            client.connect()
            self.client = client
            client.publish(self.status_topic, contract.STATUS_ONLINE.encode(), retain=True, qos=1)
            client.subscribe(self.config_topic, qos=1)
        except LINK_ERRORS as exc:
            self._lost(exc)
            return False
        self.connected = True
        self.backoff.reset()
        self.last_traffic = self.clock.ticks_ms()
        return True

    def _lost(self, exc):
        self.last_error = "mqtt: %s" % (exc,)
        self.connected = False
        self.close()
        self.next_try = self.clock.ticks_add(self.clock.ticks_ms(), self.backoff.next_delay())

    def close(self):
        if self.client is not None:
            try:
                self.client.sock.close()  # not disconnect(): the broker then sends the will, which is the truth
            except (OSError, AttributeError):
                pass
        self.client = None
        self.connected = False

    def publish(self, channel, text):
        """QoS 1 publish on the device's ``channel`` topic; True after the PUBACK, False when the link broke."""
        if not self.connected:
            return False
        try:
            self.client.publish(self.topics[channel], text.encode(), qos=1)
        except LINK_ERRORS as exc:
            self._lost(exc)
            return False
        self.last_traffic = self.clock.ticks_ms()
        return True

    def poll(self):
        """Handle incoming messages and keep the connection alive; returns the connection state."""
        if not self.connected:
            return False
        try:
            self.client.check_msg()
            now = self.clock.ticks_ms()
            if self.clock.ticks_diff(now, self.last_traffic) >= self.keepalive_ms // 2:
                self.client.ping()
                self.last_traffic = now
        except LINK_ERRORS as exc:
            self._lost(exc)
        return self.connected
