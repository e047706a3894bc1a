# Shared code of the iots6_dynsec_* modules: a small synchronous client of Mosquitto's dynamic security
# plugin ($CONTROL/dynamic-security/v1), built on paho-mqtt (Debian's python3-paho-mqtt 1.6, or paho 2.x).
# Passwords are only ever sent to the broker; nothing here logs or returns them.

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import threading
import uuid

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
ADMIN_TOPICS = CONTROL_TOPIC + "/#"
# Nothing may be published, subscribed or delivered unless a role allows it; unsubscribing always may.
DEFAULT_ACL_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": True,
}
# Mosquitto 2.0's dynamic security plugin: PBKDF2-HMAC-SHA512 over a 12-byte salt, 101 iterations by default.
PW_ITERATIONS = 101
PW_SALT_BYTES = 12


class DynsecError(Exception):
    """A broker that cannot be reached, refused credentials or a command the plugin rejected."""


def password_entry(password, iterations=PW_ITERATIONS, salt=None):
    """The password, salt and iterations fields of a client in dynamic-security.json."""
    salt = os.urandom(PW_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
    }


def initial_config(admin_username, admin_password, admin_role="admin"):
    """The state file before the broker's first start: one admin client whose role may use the control API and
    nothing else, and default access that denies everything a role does not allow (iotctl.broker.dynsec's rules;
    a test keeps the two equal)."""
    client = {
        "username": admin_username,
        "textName": "iots6 dynamic security admin",
        "roles": [{"rolename": admin_role}],
    }
    client.update(password_entry(admin_password))
    acltypes = ("publishClientSend", "publishClientReceive", "subscribePattern")
    return {
        "clients": [client],
        "roles": [
            {"rolename": admin_role, "acls": [{"acltype": t, "topic": ADMIN_TOPICS, "allow": True} for t in acltypes]}
        ],
        "defaultACLAccess": dict(DEFAULT_ACL_ACCESS),
    }


def _reason(value):
    """paho 1.x passes an int return code, paho 2.x a ReasonCode: both are 0 on success."""
    return int(getattr(value, "value", value))


def _new_client(client_id):
    import paho.mqtt.client as mqtt

    if hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt >= 2.0
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    return mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311)


def _connect(host, port, username, password, timeout):
    """A started client logged in as username, or DynsecError; returns (client, message queue)."""
    client = _new_client("iots6-ansible-" + uuid.uuid4().hex[:12])
    client.username_pw_set(username, password)
    connected = threading.Event()
    result = {}
    messages = queue.Queue()

    def on_connect(_client, _userdata, _flags, rc, *_rest):
        result["rc"] = _reason(rc)
        connected.set()

    client.on_connect = on_connect
    client.on_message = lambda _c, _u, msg: messages.put(msg.payload)
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise DynsecError(f"broker {host}:{port} cannot be reached ({exc})") from None
    client.loop_start()
    if not connected.wait(timeout):
        _close(client)
        raise DynsecError(f"broker {host}:{port} did not answer CONNECT within {timeout}s")
    if result["rc"] != 0:
        _close(client)
        raise DynsecError("broker {}:{} refused the login of `{}` (code {})".format(host, port, username, result["rc"]))
    return client, messages


def _close(client):
    try:
        client.disconnect()
    finally:
        client.loop_stop()


def login_works(host, port, username, password, timeout=10.0):
    """True when the broker accepts this username and password."""
    try:
        client, _ = _connect(host, port, username, password, timeout)
    except DynsecError as exc:
        if "refused the login" in str(exc):
            return False
        raise
    _close(client)
    return True


class DynsecClient:
    """Sends dynamic security commands as the admin client and returns the plugin's responses."""

    def __init__(self, host, port, username, password, timeout=10.0):
        self.timeout = timeout
        self.client, self.messages = _connect(host, port, username, password, timeout)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.subscribe(RESPONSE_TOPIC, qos=1)
        if not subscribed.wait(timeout):
            self.close()
            raise DynsecError(f"the broker did not acknowledge the subscription to {RESPONSE_TOPIC}")

    def close(self):
        _close(self.client)

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()

    def command(self, name, **fields):
        """Run one command; returns its `data` (or {}), raises DynsecError with the plugin's error text."""
        correlation = uuid.uuid4().hex
        body = dict(fields, command=name, correlationData=correlation)
        self.client.publish(CONTROL_TOPIC, json.dumps({"commands": [body]}), qos=1)
        while True:
            try:
                payload = self.messages.get(timeout=self.timeout)
            except queue.Empty:
                raise DynsecError(f"no answer to `{name}` within {self.timeout}s") from None
            for response in json.loads(payload).get("responses", []):
                if response.get("correlationData") != correlation:
                    continue
                if response.get("error"):
                    raise DynsecError("`{}` failed: {}".format(name, response["error"]))
                return response.get("data") or {}

    def get(self, name, **fields):
        """Like command(), but None when the plugin answers that the object does not exist."""
        try:
            return self.command(name, **fields)
        except DynsecError as exc:
            if "not found" in str(exc).lower():
                return None
            raise
