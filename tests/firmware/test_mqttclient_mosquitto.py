"""The firmware's own MQTT client (firmware/lib/iots6/mqttclient.py) against a real Mosquitto with the platform's
accounts and ACLs.

The MicroPython tests run it against a fake broker written for them; this proves the wire format against the real
one. It runs under CPython (the client is plain Python over a socket-like object) through the simulator's shims
(iotctl/simulate/sockets.py: CPython sockets with the stream calls MicroPython's sockets have); nothing else is
adapted - the client, the bounded ``Link`` and ``Net`` are the firmware's code, unchanged.  The simulator runs the
same client over the same shims, over TLS too (tests/integration/test_simulate.py).
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from iotctl.simulate import firmware_path
from iotctl.simulate.sockets import SOCKET


@pytest.fixture
def firmware():
    firmware_path()
    from iots6 import compat, dns, mqttclient, net

    link = net.Net(SOCKET, dns.Resolver(SOCKET, compat.Clock(), lambda: []))  # the firmware's resolver: IP literals

    def client(client_id, user, password, keepalive=10):
        return mqttclient.MQTTClient(
            client_id, "127.0.0.1", 0, user, password, keepalive, net=link, clock=compat.Clock()
        )

    return client, mqttclient.MQTTException


def _until(fn, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.02)
    raise AssertionError(f"no {what} within {timeout} s")


def test_device_session_against_mosquitto(broker, device_id, firmware, request):
    make, mqtt_exception = firmware
    password = broker.add_device(device_id)
    base = f"iots6/{device_id}"
    opened = []

    def close_all():  # whatever the test's outcome: no socket is left for the garbage collector to warn about
        for c in opened:
            sock = getattr(c, "sock", None)
            if sock is not None:
                sock.close()

    request.addfinalizer(close_all)

    def client(client_id, user, pw, keepalive=10):
        c = make(client_id, user, pw, keepalive)
        c.port = broker.port
        opened.append(c)
        return c

    op_user, op_pw = broker.operator
    watcher = client(f"watch-{device_id}", op_user, op_pw)
    seen = []
    watcher.set_callback(lambda t, m: seen.append((bytes(t).decode(), bytes(m))))
    watcher.connect()
    watcher.subscribe(f"{base}/#", qos=1)

    device = client(device_id, device_id, password)
    notices = []
    device.set_callback(lambda t, m: notices.append((bytes(t).decode(), bytes(m))))
    device.set_last_will(f"{base}/status", b"offline", retain=True, qos=1)
    assert device.connect() == 0  # clean session: nothing kept
    device.publish(f"{base}/status", b"online", retain=True, qos=1)  # returns after the PUBACK
    device.subscribe(f"{base}/config", qos=1)
    assert device.check_msg() is None  # nothing waiting: returns at once

    # The operator account only reads (docs/environments.md); the config server's notice comes from another client.
    notifier = client(f"notify-{device_id}", *broker.publisher)
    notifier.connect()
    notifier.publish(f"{base}/config", b'{"version": 3, "etag": "e3"}', retain=True, qos=1)
    notifier.disconnect()
    _until(lambda: device.check_msg() or notices, "config notice")
    assert notices == [(f"{base}/config", b'{"version": 3, "etag": "e3"}')]

    reading = json.dumps({"v": 1, "device_id": device_id, "seq": 7}).encode()
    device.publish(f"{base}/telemetry", reading, qos=1)
    device.ping()
    assert device.pings_pending == 1
    _until(lambda: device.check_msg() is not None or device.pings_pending == 0, "PINGRESP")
    _until(lambda: watcher.check_msg() or (f"{base}/telemetry", reading) in seen, "telemetry at the watcher")
    assert (f"{base}/status", b"online") in seen

    device.sock.close()  # the link dies without DISCONNECT: the broker publishes the will
    _until(lambda: watcher.check_msg() or (f"{base}/status", b"offline") in seen, "the last will")

    refused = client(device_id, device_id, "not-the-password")
    with pytest.raises(mqtt_exception) as info:
        refused.connect()
    assert info.value.args[0] in (4, 5)  # bad user name or password / not authorised
    watcher.disconnect()


def test_a_broker_that_stops_answering_is_a_timeout_not_a_hang(firmware):
    """A listener that accepts TCP and never answers: connect() fails within the link's timeout."""
    make, _ = firmware
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        c = make("dev-x", None, None)
        c.port = server.getsockname()[1]
        with pytest.raises(TimeoutError):  # the CONNACK read ends by the link's timeout (it would otherwise hang)
            c.connect()
    finally:
        server.close()
