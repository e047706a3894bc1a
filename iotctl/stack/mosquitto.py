"""Run a real Mosquitto broker with generated config, password file and ACL in a directory of its own."""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

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


@dataclass
class MosquittoServer(procs.PidFileDaemon):
    """A broker rooted at ``directory``: config, accounts, persistence, log and pid file all live there."""

    daemon_name = "mosquitto"

    directory: Path
    port: int
    bind: str = "127.0.0.1"
    topic_base: str = "iots6"
    max_queued_messages: int = 1_000_000
    autosave_interval: int = AUTOSAVE_INTERVAL
    autosave_on_changes: bool = AUTOSAVE_ON_CHANGES
    max_packet_size: int = MAX_PACKET_SIZE

    def __post_init__(self):
        self.directory = Path(self.directory)
        self.accounts = AccountStore(self.directory, self.topic_base)
        self.conf_file = self.directory / "mosquitto.conf"
        self.log_file = self.directory / "mosquitto.log"
        self.pid_file = self.directory / "mosquitto.pid"
        self.data_dir = self.directory / "data"

    def write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data_dir.mkdir(exist_ok=True, mode=0o700)
        self.accounts.write_broker_files()
        conf = render(
            "mosquitto/mosquitto.conf.j2",
            # Mosquitto drops privileges to `mosquitto` when started as root unless told otherwise;
            # our files are private to the invoking user, so it stays who started it.
            run_as_user="root" if os.geteuid() == 0 else None,
            password_file=self.accounts.password_file,
            acl_file=self.accounts.acl_file,
            port=self.port,
            bind=self.bind,
            tls=None,
            persistence_dir=self.data_dir,
            autosave_interval=self.autosave_interval,
            autosave_on_changes=self.autosave_on_changes,
            max_queued_messages=self.max_queued_messages,
            max_inflight_messages=0,
            max_packet_size=self.max_packet_size,
            persistent_client_expiration="30d",
            log_file=None,
            pid_file=None,
        )
        self.conf_file.write_text(conf)

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
        return proc.pid

    def reload(self) -> bool:
        """Re-read password file and ACL (SIGHUP). False if the broker is not running."""
        pid = self.pid()
        if not pid:
            # The directory may be served by the embedded broker instead (IOTCTL_ENGINE=embedded).
            from iotctl.stack.embedded_broker import EmbeddedBroker

            return EmbeddedBroker(self.directory, self.port, self.bind, self.topic_base).reload()
        os.kill(pid, signal.SIGHUP)
        return True
