"""The native stack's broker brought up as ``stack up`` needs it: running, with the service accounts of the
secret files.

Mosquitto (system engine) keeps its accounts itself (dynamic security): its state is seeded, or migrated from the
old password-file registry, before its first start, then its roles and service clients are reconciled over the
control API (``iotctl.broker.dynsec.reconcile``, as the Docker stack does).  The embedded amqtt broker reads an
account registry (``AccountStore.ensure_services``) and is told to reload it when it changed.
"""

from __future__ import annotations

from iotctl.broker import dynsec
from iotctl.errors import OperationFailed
from iotctl.settings import Settings
from iotctl.stack import engines, procs
from iotctl.stack.base import Progress
from iotctl.stack.engines import BIND, MOSQUITTO
from iotctl.stack.layout import StackLayout
from iotctl.stack.state import service_passwords


def ensure_broker(
    layout: StackLayout, settings: Settings, engine: str, secrets: dict[str, str], progress: Progress
) -> list[str]:
    """The broker running with the service accounts of ``secrets``; returns ``["mosquitto"]`` if it was started."""
    broker = engines.broker(layout, settings, engine)
    if engine != "embedded":
        return _ensure_mosquitto(layout, settings, broker, secrets, progress)
    started: list[str] = []
    accounts_changed = broker.accounts.ensure_services(service_passwords(secrets))
    if broker.pid():
        if accounts_changed:
            broker.reload()
    else:
        port_free(settings.mqtt_port, MOSQUITTO, "IOTCTL_MQTT_PORT")
        progress(f"starting {MOSQUITTO} ({engine}) on {BIND}:{settings.mqtt_port}")
        broker.start()
        started.append(MOSQUITTO)
    return started


def _ensure_mosquitto(layout: StackLayout, settings: Settings, broker, secrets, progress: Progress) -> list[str]:
    """Mosquitto with dynamic security: seeded (or migrated from the old password file) before its first
    start, then its roles and service clients brought up to date over the control API."""
    started: list[str] = []
    if broker.tls:
        engines.ensure_certificates(layout)
    if broker.pid() and (not broker.state_file.exists() or broker.config_changed()):
        # Started by an iotctl from before dynamic security, or with another listener set: a clean restart
        # keeps persistent sessions and queued messages (Mosquitto saves them on SIGTERM).
        why = (
            "to move its accounts into dynamic security"
            if not broker.state_file.exists()
            else "to apply its new configuration"
        )
        progress(f"restarting {MOSQUITTO} {why}")
        broker.stop()
    services = service_passwords(secrets)
    if not broker.pid():
        done = broker.prepare_state(secrets["mqtt-admin"], services)
        if done == "migrated":
            progress(f"migrated the broker accounts into dynamic security (`{broker.state_file}`)")
        port_free(settings.mqtt_port, MOSQUITTO, "IOTCTL_MQTT_PORT")
        if broker.tls:
            port_free(broker.tls.port, f"{MOSQUITTO} (TLS)", "IOTCTL_MQTT_TLS_PORT")
        progress(
            f"starting {MOSQUITTO} (system) on {BIND}:{settings.mqtt_port}"
            + (f", TLS on {BIND}:{broker.tls.port}" if broker.tls else "")
        )
        broker.start()
        started.append(MOSQUITTO)
    endpoint = broker.admin_endpoint(secrets["mqtt-admin"])
    for change in dynsec.reconcile(endpoint, settings.topic_base, services, broker.state_file):
        progress(f"broker: updated {change}")
    return started


def port_free(port: int, what: str, env_name: str) -> None:
    """Raise OperationFailed naming ``what`` and the setting to change when ``port`` is taken."""
    if procs.port_open(BIND, port):
        raise OperationFailed(
            f"Port {port} for `{what}` is already in use by another program; stop it or set {env_name}."
        )
