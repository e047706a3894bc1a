"""The device's MQTT session: connect with a last will, announce online, subscribe to config notices, publish
QoS 1, keep the connection alive and notice when it is dead.

On every connect: last will = retained ``offline`` on the status topic, then a retained ``online`` (``no_clock``
while the device has no clock: ``status()`` says which, and ``announce()`` republishes when it changes), then a
subscription to the device's own config topic (clean session, so it is renewed each time; the notice is retained,
so a reconnect also triggers a config check).  ``publish`` returns True only after the broker's PUBACK, so the
caller removes a reading from the flash buffer only then.

Any failure marks the link lost and schedules a reconnect with backoff; nothing here raises.  The client comes
from ``client_factory()`` (the firmware's own :class:`iots6.mqttclient.MQTTClient`, on the board and in the
simulator; tests pass fakes); whatever it raises (OSError, MQTTException, a stray AssertionError from another
client) is a lost link.  A half-open link (the broker vanished without closing the TCP connection) is noticed
by a PUBACK that does not come (the client's timeout) or a PINGREQ without PINGRESP within ``PING_TIMEOUT_MS``.
"""

from iots6 import contract
from iots6.backoff import Backoff
from iots6.compat import describe

PING_TIMEOUT_MS = 10000
POLL_MS = 250  # incoming messages (config notices) are looked for this often, not every 20 ms step
CONNACK_CODES = {1: "protocol refused", 2: "client id refused", 3: "broker unavailable",
                 4: "bad username or password", 5: "not authorised"}


def _why(exc):
    if exc.__class__.__name__ == "MQTTException" and exc.args and exc.args[0] in CONNACK_CODES:
        return "login refused: " + CONNACK_CODES[exc.args[0]]
    return describe(exc)


class Mqtt:
    def __init__(self, client_factory, device_id, base, clock, keepalive_s=60, on_config=None, backoff=None,
                 feed=None, status=None):
        """``client_factory()`` returns a new client with umqtt.simple's calls, configured for the broker;
        ``status()`` the retained status to announce while connected (default ``online``)."""
        self.status = status or (lambda: contract.STATUS_ONLINE)
        self.announced = None
        self.client_factory = client_factory
        self.device_id = device_id
        self.clock = clock
        self.keepalive_ms = keepalive_s * 1000
        self.on_config = on_config
        self.backoff = backoff or Backoff(2000, 120000)
        self.feed = feed
        self.client = None
        self.connected = False
        self.next_try = None
        self.last_send = None
        self.ping_sent = None
        self.last_poll = None
        self.last_error = None
        self.connects = 0
        self.status_topic = contract.topic(base, device_id, contract.STATUS)
        self.config_topic = contract.topic(base, device_id, contract.CONFIG)
        self.topics = {}
        for channel in (contract.TELEMETRY, contract.EVENT):
            self.topics[channel] = contract.topic(base, device_id, channel)

    def _feed(self):
        if self.feed is not None:
            self.feed()

    def _on_message(self, topic, msg):
        if isinstance(topic, bytes):
            topic = topic.decode()
        if topic == self.config_topic and self.on_config is not None:
            self.on_config(msg)

    def due(self):
        return self.next_try is None or self.clock.ticks_diff(self.clock.ticks_ms(), self.next_try) >= 0

    def connect(self):
        """One connection attempt, each step bounded and the watchdog fed between them; True when connected."""
        self.close()
        try:
            client = self.client_factory()
            client.set_last_will(self.status_topic, contract.STATUS_OFFLINE.encode(), retain=True, qos=1)
            client.set_callback(self._on_message)
            self.client = client
            client.connect()
            self._feed()
            announced = self.status()
            client.publish(self.status_topic, announced.encode(), retain=True, qos=1)
            self.announced = announced
            self._feed()
            client.subscribe(self.config_topic, qos=1)
            self._feed()
        except Exception as exc:  # noqa: BLE001 - whatever the client raises, the link is unusable
            self._lost(exc)
            return False
        self.connected = True
        self.connects += 1
        self.backoff.reset()
        self.last_error = None
        self.last_send = self.clock.ticks_ms()
        self.ping_sent = None
        return True

    def _lost(self, exc):
        self.last_error = "mqtt: %s" % (_why(exc),)
        self.connected = False
        self.close()
        self.next_try = self.clock.ticks_add(self.clock.ticks_ms(), self.backoff.next_delay())

    def close(self):
        if self.client is not None:
            try:
                self.client.sock.close()  # not disconnect(): the broker then sends the will, which is the truth
            except Exception:  # noqa: BLE001 - already broken
                pass
        self.client = None
        self.connected = False

    def announce(self):
        """Republish the retained status when it changed since the last announcement (e.g. the clock got set)."""
        if not self.connected:
            return False
        current = self.status()
        if current == self.announced:
            return True
        try:
            self.client.publish(self.status_topic, current.encode(), retain=True, qos=1)
        except Exception as exc:  # noqa: BLE001
            self._lost(exc)
            return False
        self.announced = current
        self.last_send = self.clock.ticks_ms()
        return True

    def publish(self, channel, text):
        """QoS 1 publish on the device's ``channel`` topic; True after the PUBACK, False when the link broke."""
        if not self.connected:
            return False
        try:
            self.client.publish(self.topics[channel], text.encode(), qos=1)
        except Exception as exc:  # noqa: BLE001
            self._lost(exc)
            return False
        self.last_send = self.clock.ticks_ms()
        return True

    def poll(self):
        """Handle a waiting message, keep the connection alive, notice a dead one; returns the connection state."""
        if not self.connected:
            return False
        clock = self.clock
        now = clock.ticks_ms()
        if self.last_poll is not None and clock.ticks_diff(now, self.last_poll) < POLL_MS:
            return True
        self.last_poll = now
        try:
            self.client.check_msg()
            now = clock.ticks_ms()
            if getattr(self.client, "pings_pending", 0):
                if clock.ticks_diff(now, self.ping_sent) >= PING_TIMEOUT_MS:
                    raise OSError(110, "no answer to PINGREQ")  # half-open: the broker is gone
            elif clock.ticks_diff(now, self.last_send) >= self.keepalive_ms // 2:
                self.client.ping()
                self.ping_sent = now
                self.last_send = now
        except Exception as exc:  # noqa: BLE001
            self._lost(exc)
        return self.connected
