"""Run a real Mosquitto broker with generated config and dynamic security state in a directory of its own.

Accounts live in the broker (``data/dynamic-security.json``, see ``iotctl.broker.dynsec``): seeded before the
first start, changed live over the control API afterwards.  A directory from before dynamic security (an
``accounts.json`` with ``passwd``/``acl`` rendered from it) is migrated on the next start: every device keeps its
password, the old files are renamed ``*.pre-dynsec``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from iotctl.broker import dynsec
from iotctl.broker.accounts import AccountStore
from iotctl.errors import MissingDependency
from iotctl.render import render
from iotctl.stack import procs

_SEARCH = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin")

#: Largest MQTT packet the broker accepts (``max_packet_size``, docs/contract.md): far above the contract's
#: 4096-byte payload, so an oversized payload still reaches the ingest and is dead-lettered as ``oversized``;
#: a bigger packet is refused by the broker, which closes the connection and logs it.
MAX_PACKET_SIZE = 65536
#: The broker writes its whole state to mosquitto.db after every AUTOSAVE_INTERVAL changes (each reading queued for
#: a session is one), not every 60 s: a broker crash then loses fewer than 100 acknowledged readings instead of a
#: minute of them. docs/ingest.md (Durability) states the exact bound; ``make bench`` (bench/durability.py)
#: measures the cost of this and of the other settings (saving after every change costs ~30x the throughput
#: with a backlog: every save rewrites the whole queue).
AUTOSAVE_ON_CHANGES = True
AUTOSAVE_INTERVAL = 100


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for directory in _SEARCH:
        candidate = Path(directory) / "mosquitto"
        if candidate.exists():
            return str(candidate)
    return None


def require_mosquitto() -> str:
    found = find_mosquitto()
    if not found:
        raise MissingDependency(
            "`mosquitto` not found on PATH; install it (apt-get install mosquitto) or set IOTCTL_ENGINE=embedded."
        )
    return found


@dataclass(frozen=True)
class TlsListener:
    """A TLS listener: the server's certificate chain and key (PEM files readable by the broker)."""

    port: int
    certfile: Path
    keyfile: Path
    bind: str = "127.0.0.1"


@dataclass(frozen=True)
class BrokerConfig:
    """Everything ``templates/mosquitto/mosquitto.conf.j2`` takes: the one place a Mosquitto config is rendered
    from (the native stack's broker and the Docker stack's container differ only in paths, addresses and user)."""

    port: int
    bind: str
    dynsec_plugin: str
    dynsec_state: str | Path
    persistence_dir: str | Path
    tls: TlsListener | None = None
    run_as_user: str | None = None
    max_queued_messages: int = 1_000_000
    autosave_interval: int = AUTOSAVE_INTERVAL
    autosave_on_changes: bool = AUTOSAVE_ON_CHANGES
    max_packet_size: int = MAX_PACKET_SIZE
    persistent_client_expiration: str = "30d"

    def render(self) -> str:
        tls = None
        if self.tls:
            tls = {
                "port": self.tls.port,
                "bind": self.tls.bind,
                "certfile": self.tls.certfile,
                "keyfile": self.tls.keyfile,
            }
        return render(
            "mosquitto/mosquitto.conf.j2",
            run_as_user=self.run_as_user,
            dynsec_plugin=self.dynsec_plugin,
            dynsec_state=self.dynsec_state,
            port=self.port,
            bind=self.bind,
            tls=tls,
            persistence_dir=self.persistence_dir,
            autosave_interval=self.autosave_interval,
            autosave_on_changes=self.autosave_on_changes,
            max_queued_messages=self.max_queued_messages,
            max_inflight_messages=0,
            max_packet_size=self.max_packet_size,
            persistent_client_expiration=self.persistent_client_expiration,
            log_file=None,
            pid_file=None,
        )


@dataclass
class MosquittoServer(procs.PidFileDaemon):
    """A broker rooted at ``directory``: config, dynamic-security state, persistence, log and pid file all there."""

    daemon_name = "mosquitto"

    directory: Path
    port: int
    bind: str = "127.0.0.1"
    topic_base: str = "iots6"
    max_queued_messages: int = 1_000_000
    autosave_interval: int = AUTOSAVE_INTERVAL
    autosave_on_changes: bool = AUTOSAVE_ON_CHANGES
    max_packet_size: int = MAX_PACKET_SIZE
    tls: TlsListener | None = None

    def __post_init__(self):
        self.directory = Path(self.directory)
        self.conf_file = self.directory / "mosquitto.conf"
        self.log_file = self.directory / "mosquitto.log"
        self.pid_file = self.directory / "mosquitto.pid"
        self.data_dir = self.directory / "data"
        self.state_file = self.data_dir / dynsec.STATE_FILE
        #: The registry of the password-file era, read once by the migration.
        self.legacy = AccountStore(self.directory, self.topic_base)

    # -- dynamic security state
    def legacy_files(self) -> list[Path]:
        names = (self.legacy.registry_path.name, "passwd", "acl")
        return [self.directory / n for n in names if (self.directory / n).exists()]

    def prepare_state(self, admin_password: str, services: dict[str, str]) -> str | None:
        """Write ``dynamic-security.json`` when there is none (the broker must not be running); see
        :func:`iotctl.broker.dynsec.write_initial_state`.  Returns ``migrated``, ``seeded`` or None (kept)."""
        return dynsec.write_initial_state(self.state_file, self.legacy, admin_password, self.topic_base, services)

    def admin_endpoint(self, password: str):
        from iotctl.endpoints import MqttEndpoint

        return MqttEndpoint(self.bind, self.port, dynsec.ADMIN_USERNAME, password)

    def config_changed(self) -> bool:
        """Whether the written config differs from what this server would write now (a running broker started
        with it needs a restart to apply it): no dynamic security yet, a TLS listener added or removed, a new
        template."""
        try:
            return self.conf_file.read_text() != self.render_config()
        except OSError:
            return True

    def write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data_dir.mkdir(exist_ok=True, mode=0o700)
        if not self.state_file.exists():
            raise MissingDependency(
                f"Broker state `{self.state_file}` is missing; seed it first (MosquittoServer.prepare_state, "
                "which `iotctl stack up` runs)."
            )
        self.conf_file.write_text(self.render_config())

    def render_config(self) -> str:
        return BrokerConfig(
            port=self.port,
            bind=self.bind,
            dynsec_plugin=dynsec.require_plugin(),
            dynsec_state=self.state_file,
            persistence_dir=self.data_dir,
            tls=self.tls,
            # Mosquitto drops privileges to `mosquitto` when started as root unless told otherwise;
            # our files are private to the invoking user, so it stays who started it.
            run_as_user="root" if os.geteuid() == 0 else None,
            max_queued_messages=self.max_queued_messages,
            autosave_interval=self.autosave_interval,
            autosave_on_changes=self.autosave_on_changes,
            max_packet_size=self.max_packet_size,
        ).render()

    def pid(self) -> int | None:
        return procs.read_pid(self.pid_file)

    def start(self, timeout: float = 10.0) -> int:
        pid = self.pid()
        if pid:
            return pid
        binary = require_mosquitto()
        self.write_config()
        proc = procs.spawn([binary, "-c", str(self.conf_file)], log=self.log_file, pid_file=self.pid_file)
        procs.wait_for_port(self.bind, self.port, timeout, "mosquitto", self.log_file, proc.pid)
        if self.tls:
            procs.wait_for_port(self.tls.bind, self.tls.port, timeout, "mosquitto (TLS)", self.log_file, proc.pid)
        return proc.pid
