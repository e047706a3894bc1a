"""A connected paho-mqtt v5 client for the CLI (tail, provisioning, simulator, tests), errors mapped.

Over TLS (``endpoint.tls``) the broker's certificate is verified against ``endpoint.ca_file`` (or the system's
trust store) including its host name.  Every failure is one line naming the broker (and the environment) and the
likely fix: broker down, wrong CA, not a TLS port, bad credentials.
"""

from __future__ import annotations

import ssl
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
    if endpoint.tls:
        _use_tls(client, endpoint)
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
    except ssl.SSLCertVerificationError as exc:
        raise Unreachable(
            f"Broker {endpoint.where()} presented a certificate that does not verify ({exc.verify_message}) "
            f"against CA `{endpoint.ca_file or 'system trust store'}`; {_fix_ca(endpoint)}."
        ) from None
    except ssl.SSLError as exc:
        raise Unreachable(
            f"TLS handshake with broker {endpoint.where()} failed ({exc.reason or exc}); check that this port "
            f"speaks TLS, or {_fix_address(endpoint)}."
        ) from None
    except OSError as exc:
        raise Unreachable(
            f"Broker {endpoint.where()} is not reachable ({exc.strerror or exc}); {_fix_down(endpoint)}."
        ) from None
    client.loop_start()
    if not done.wait(timeout):
        client.loop_stop()
        client.disconnect()
        hint = "is it a TLS port? " if not endpoint.tls else ""
        raise Unreachable(
            f"Broker {endpoint.where()} did not answer the MQTT CONNECT within {timeout:g} s; {hint}"
            f"{_fix_address(endpoint)}."
        )
    rc = result["rc"]
    if rc.is_failure:
        client.loop_stop()
        client.disconnect()
        if str(rc) in _AUTH_FAILURES:
            raise AuthRefused(
                f"Broker {endpoint.where()} refused account `{endpoint.username}` ({rc}); {_fix_credentials(endpoint)}."
            )
        raise Unreachable(f"Broker {endpoint.where()} refused the connection ({rc}).")
    # From here on, reconnect quietly after a broker restart.
    client.on_connect = None
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client


def _use_tls(client: paho.Client, endpoint: MqttEndpoint) -> None:
    context = ssl.create_default_context(cafile=str(endpoint.ca_file) if endpoint.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    client.tls_set_context(context)


def _fix_down(endpoint: MqttEndpoint) -> str:
    name = endpoint.env
    if name:
        return f"check that the broker runs and that `iotctl env show {name}` has the right address"
    return "start it with `iotctl stack up` or fix IOTCTL_MQTT_HOST/IOTCTL_MQTT_PORT"


def _fix_address(endpoint: MqttEndpoint) -> str:
    name = endpoint.env
    if name:
        return f"fix the broker address of environment `{name}` (`iotctl env show {name}`)"
    return "fix IOTCTL_MQTT_HOST/IOTCTL_MQTT_PORT"


def _fix_ca(endpoint: MqttEndpoint) -> str:
    name = endpoint.env
    if name:
        return f"register the CA that signed the broker's certificate (`iotctl env add {name} --force --ca FILE …`)"
    return "use the CA that signed the broker's certificate"


def _fix_credentials(endpoint: MqttEndpoint) -> str:
    name = endpoint.env
    if name:
        return f"the credentials of environment `{name}` are wrong or expired; re-register it with current ones"
    return "check the username and password file"
