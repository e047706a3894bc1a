"""A connected paho-mqtt v5 client for the CLI (tail, provisioning notices, simulator, tests), errors mapped."""

from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from iotctl.endpoints import MqttEndpoint
from iotctl.errors import AuthRefused, Unreachable

_AUTH_FAILURES = {"Bad user name or password", "Not authorized", "Client identifier not valid"}


def connect(
    endpoint: MqttEndpoint,
    client_id: str | None = None,
    *,
    timeout: float = 5.0,
    clean_start: bool = True,
    session_expiry: int = 0,
    will: tuple[str, str, bool] | None = None,
    on_message=None,
    userdata=None,
) -> paho.Client:
    """Connect (MQTT v5, or 3.1.1 when the endpoint says so: the embedded broker) and start the network thread.

    Raises Unreachable/AuthRefused with one-line messages.
    """
    v5 = endpoint.protocol == "5"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"iotctl-{uuid.uuid4().hex[:10]}",
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else (clean_start or session_expiry == 0),
        userdata=userdata,
    )
    client.username_pw_set(endpoint.username, endpoint.password)
    if will:
        client.will_set(will[0], will[1], qos=1, retain=will[2])
    if on_message:
        client.on_message = on_message
    result: dict = {}
    done = threading.Event()

    def on_connect(_client, _userdata, _flags, reason_code, _props):
        result["rc"] = reason_code
        done.set()

    client.on_connect = on_connect
    try:
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = session_expiry
            client.connect(endpoint.host, endpoint.port, keepalive=30, clean_start=clean_start, properties=props)
        else:
            client.connect(endpoint.host, endpoint.port, keepalive=30)
    except OSError:
        raise Unreachable(
            f"Broker `{endpoint.host}:{endpoint.port}` is not reachable; start it with `iotctl stack up` "
            "or fix IOTCTL_MQTT_HOST/IOTCTL_MQTT_PORT."
        ) from None
    client.loop_start()
    if not done.wait(timeout):
        client.loop_stop()
        raise Unreachable(f"Broker `{endpoint.host}:{endpoint.port}` did not answer within {timeout:g} s.")
    rc = result["rc"]
    if rc.is_failure:
        client.loop_stop()
        client.disconnect()
        if str(rc) in _AUTH_FAILURES:
            raise AuthRefused(
                f"Broker `{endpoint.host}:{endpoint.port}` refused account `{endpoint.username}` ({rc}); "
                "check the username and password file."
            )
        raise Unreachable(f"Broker `{endpoint.host}:{endpoint.port}` refused the connection ({rc}).")
    # From here on, reconnect quietly after a broker restart.
    client.on_connect = None
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client
