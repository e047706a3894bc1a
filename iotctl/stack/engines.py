"""The native stack's engines: which broker and PostgreSQL run, and the objects that run them.

``system`` runs the Debian ``mosquitto`` and PostgreSQL binaries; ``embedded`` runs pip-installed ones (the
``embedded`` extra): the amqtt MQTT 3.1.1 broker (``iotctl.stack.embedded_broker``) and the PostgreSQL 16 binaries
inside ``pgserver``, with the same accounts, ACL, private socket and SCRAM passwords.  ``auto`` picks ``system``
when both binaries are installed, else ``embedded`` when the extra is, else fails with one line naming both fixes.
The engine a stack was started with is recorded in ``stack.json``; ``auto`` keeps it (a cluster made by one
PostgreSQL major version cannot be opened by another), an explicit different engine is refused.
"""

from __future__ import annotations

from pathlib import Path

from iotctl.errors import InvalidInput, MissingDependency
from iotctl.settings import Settings
from iotctl.stack.layout import StackLayout

BIND = "127.0.0.1"
ENGINES = ("system", "embedded")
MOSQUITTO, POSTGRES = "mosquitto", "postgres"
EMBEDDED_DETAIL = {
    MOSQUITTO: "embedded amqtt broker (MQTT 3.1.1 only; sessions are lost when it restarts)",
    POSTGRES: "embedded PostgreSQL 16 from pgserver",
}


def system_available() -> bool:
    """Whether the ``system`` engine's binaries (mosquitto and a PostgreSQL server) are installed."""
    from iotctl.stack.mosquitto import find_mosquitto
    from iotctl.stack.postgres import find_pg_bindir

    return find_mosquitto() is not None and find_pg_bindir() is not None


def embedded_missing() -> list[str]:
    """The packages of the ``embedded`` extra that are not installed (empty when the engine can run)."""
    from iotctl.stack.embedded_broker import amqtt_available
    from iotctl.stack.postgres import pgserver_bindir

    return [name for name, ok in (("amqtt", amqtt_available()), ("pgserver", pgserver_bindir())) if not ok]


def resolve_engine(wanted: str, recorded: str | None, recorded_initialised: bool, state_dir: Path) -> str:
    """The engine to start with (see the module docstring); raises before anything is created.

    ``recorded``: the engine in ``stack.json``; ``recorded_initialised``: whether its PostgreSQL cluster exists.
    """
    if recorded in ENGINES and recorded_initialised:
        if wanted in ("auto", recorded):
            return recorded
        raise InvalidInput(
            f"The stack in `{state_dir}` was created with the `{recorded}` engine; use "
            f"--engine {recorded} (IOTCTL_ENGINE={recorded}) or delete it with "
            "`iotctl stack down --reset`."
        )
    if wanted == "system":
        return "system"
    missing = embedded_missing()
    if wanted == "embedded":
        if missing:
            raise MissingDependency(
                f"The `embedded` engine needs {' and '.join(f'`{m}`' for m in missing)}; install them "
                "(pip install 'iotctl[embedded]') or use IOTCTL_ENGINE=system with Mosquitto and "
                "PostgreSQL installed."
            )
        return "embedded"
    if system_available():
        return "system"
    if not missing:
        return "embedded"
    raise MissingDependency(
        "Neither `mosquitto` and PostgreSQL nor the embedded engines are installed; install them "
        "(`make install-system`, as root) or install the embedded extra (pip install 'iotctl[embedded]')."
    )


def broker(layout: StackLayout, settings: Settings, engine: str):
    """The stack's broker (``MosquittoServer`` or ``EmbeddedBroker``: the same start/stop/pid/log_file interface)."""
    if engine == "embedded":
        from iotctl.stack.embedded_broker import EmbeddedBroker

        return EmbeddedBroker(layout.mosquitto_dir, settings.mqtt_port, topic_base=settings.topic_base)
    from iotctl.stack.mosquitto import MosquittoServer

    return MosquittoServer(
        layout.mosquitto_dir, settings.mqtt_port, topic_base=settings.topic_base, tls=tls_listener(layout, settings)
    )


def tls_listener(layout: StackLayout, settings: Settings):
    """The broker's TLS listener (``mqtt_tls_port``), its certificate issued by the stack's CA in ``pki/``."""
    from iotctl.stack.mosquitto import TlsListener

    if not settings.mqtt_tls_port:
        return None
    return TlsListener(settings.mqtt_tls_port, layout.pki_dir / "broker.crt", layout.pki_dir / "broker.key", BIND)


def ensure_certificates(layout: StackLayout) -> None:
    """The stack's CA and the broker's server certificate (for 127.0.0.1 and localhost), made or renewed."""
    from iotctl import pki

    ca = pki.ensure_ca(layout.pki_dir, common_name=f"iotctl local stack CA ({layout.state_dir.name})")
    pki.issue_server_cert(ca, layout.pki_dir, "broker", dns_names=["localhost"], ip_addresses=[BIND])


def postgres(layout: StackLayout, settings: Settings, engine: str):
    from iotctl.stack.postgres import PostgresServer

    return PostgresServer(layout.postgres_dir, settings.pg_port, fsync=True, engine=engine)
