"""The embedded MQTT broker: amqtt (pure Python, MQTT 3.1.1) for machines without Mosquitto.

``EmbeddedBroker`` has the interface of ``iotctl.stack.mosquitto.MosquittoServer`` (``start``, ``stop``,
``reload``, ``pid``, ``log_file``, ``accounts``), so the native stack and provisioning work with either.
It runs ``python -m iotctl.stack.embedded_broker <config.json>`` as a daemon bound to 127.0.0.1:

- No anonymous access: every CONNECT is checked against its own account registry (``accounts.json``, PBKDF2
  ``$7$`` hashes, ``iotctl.broker.pwhash``) by :class:`RegistryAuthPlugin`.
- The same ACL as Mosquitto's dynamic-security roles, from ``rules_for(role, username, base)``, enforced by
  :class:`RegistryTopicPlugin` on publish, subscribe and delivery.  Provisioning reaches it through
  ``iotctl.broker.identities.EmbeddedIdentities``, the same interface that fronts Mosquitto.
- SIGHUP re-reads the registry (provisioning calls ``reload()``); a changed ``accounts.json`` mtime is also
  noticed on the next CONNECT, so a missed signal cannot lock a new device out.

Limits (docs/stack.md): MQTT 3.1.1 only (no v5, no shared subscriptions); sessions, subscriptions and queued
QoS 1 messages live in memory and are lost when the broker process restarts.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from paho.mqtt.client import topic_matches_sub

from iotctl.broker.accounts import AccountStore, Rule, rules_for
from iotctl.broker.pwhash import verify_password
from iotctl.errors import MissingDependency, OperationFailed
from iotctl.secretfiles import write_secret
from iotctl.stack import procs

MODULE = "iotctl.stack.embedded_broker"
READ, WRITE = ("read", "readwrite"), ("write", "readwrite")

log = logging.getLogger(MODULE)


def amqtt_available() -> bool:
    """Whether the ``embedded`` extra's broker is installed (checked without importing it)."""
    try:
        return importlib.util.find_spec("amqtt") is not None
    except (ImportError, ValueError):
        return False


def amqtt_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("amqtt")
    except PackageNotFoundError:
        return None


def require_amqtt() -> None:
    if not amqtt_available():
        raise MissingDependency(
            "`amqtt` (the embedded MQTT broker) is not installed; install it "
            "(pip install 'iotctl[embedded]') or install Mosquitto (apt-get install mosquitto) and set "
            "IOTCTL_ENGINE=system."
        )


# ------------------------------------------------------------------------------------------ topic matching
#: A concrete topic against a filter is paho's ``topic_matches_sub``; only the filter-against-filter check of a
#: SUBSCRIBE is ours.


def filter_covered(subscription: str, pattern: str) -> bool:
    """Whether every topic that ``subscription`` can match is also matched by ACL ``pattern``."""
    levels, wanted = subscription.split("/"), pattern.split("/")
    for i, part in enumerate(wanted):
        if part == "#":
            return True
        if i >= len(levels):
            return False
        if part == "+":
            if levels[i] == "#":
                return False
            continue
        if levels[i] != part:  # a literal in the ACL is not covered by `+`/`#` in the subscription
            return False
    return len(levels) == len(wanted)


# ---------------------------------------------------------------------------------------------- registry


class Registry:
    """The accounts of one ``accounts.json``: username -> (role, hash) and each account's ACL rules."""

    def __init__(self, registry_path: Path, topic_base: str):
        self.path = Path(registry_path)
        self.topic_base = topic_base
        self.accounts: dict[str, dict] = {}
        self.rules: dict[str, list[Rule]] = {}
        self.signature: tuple | None = None
        self.reload()

    def _signature(self) -> tuple:
        # write_secret replaces the file: a new inode, size or mtime means a new registry.
        st = self.path.stat()
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def reload(self) -> None:
        try:
            signature = self._signature()
            accounts = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            # Keep serving the last good registry rather than locking everyone out on a bad read.
            log.error(
                "cannot read account registry %s (%s); keeping %d accounts",
                self.path,
                type(exc).__name__,
                len(self.accounts),
            )
            return
        rules = {}
        for username, account in accounts.items():
            try:
                rules[username] = rules_for(account["role"], username, self.topic_base)
            except (KeyError, ValueError):
                log.error("account %r has no known role; it is refused", username)
        self.accounts, self.rules, self.signature = accounts, rules, signature
        log.info("loaded %d accounts from %s", len(accounts), self.path)

    def reload_if_changed(self) -> None:
        try:
            signature = self._signature()
        except OSError:
            return
        if signature != self.signature:
            self.reload()

    def authenticate(self, username: str | None, password: str | None) -> bool:
        if not username or password is None:
            return False
        account = self.accounts.get(username)
        return bool(account and username in self.rules and verify_password(password, account["hash"]))

    def allowed(self, username: str | None, topic: str, action: str) -> bool:
        """``action``: publish (write a topic), subscribe (a filter) or receive (a delivered topic)."""
        rules = self.rules.get(username or "", [])
        if action == "publish":
            return any(r.access in WRITE and topic_matches_sub(r.topic, topic) for r in rules)
        if action == "subscribe":
            return any(r.access in READ and filter_covered(topic, r.topic) for r in rules)
        return any(r.access in READ and topic_matches_sub(r.topic, topic) for r in rules)


_registries: dict[Path, Registry] = {}


def registry_for(path: str | Path, topic_base: str) -> Registry:
    """One Registry per file in this process, shared by the auth and topic plugins."""
    key = Path(path)
    if key not in _registries:
        _registries[key] = Registry(key, topic_base)
    return _registries[key]


# ------------------------------------------------------------------------------------- the amqtt plugins


def _plugins():
    """The amqtt plugin classes (built lazily: amqtt is an optional dependency)."""
    from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

    @dataclass
    class PluginConfig:
        registry: str = ""
        topic_base: str = "iots6"

    class RegistryAuthPlugin(BaseAuthPlugin):
        """Accept a CONNECT only with a username and password of the registry; anonymous is refused."""

        Config = PluginConfig

        async def authenticate(self, *, session) -> bool:
            registry = registry_for(self.config.registry, self.config.topic_base)
            registry.reload_if_changed()
            ok = registry.authenticate(session.username, session.password)
            if not ok:
                log.warning("refused connection of client %r (user %r)", session.client_id, session.username)
            return ok

    class RegistryTopicPlugin(BaseTopicPlugin):
        """Mosquitto's ACL: ``rules_for`` of the session's account, on publish, subscribe and delivery."""

        Config = PluginConfig

        async def topic_filtering(self, *, session=None, topic=None, action=None) -> bool:
            if session is None or not topic or action is None:
                return False
            registry = registry_for(self.config.registry, self.config.topic_base)
            ok = registry.allowed(session.username, topic, str(action))
            if not ok and str(action) != "receive":
                log.warning("denied %s on %r for user %r", action, topic, session.username)
            return ok

    return RegistryAuthPlugin, RegistryTopicPlugin


def __getattr__(name: str):
    # amqtt loads plugins by dotted path ("iotctl.stack.embedded_broker.RegistryAuthPlugin").
    if name in ("RegistryAuthPlugin", "RegistryTopicPlugin"):
        auth, topic = _plugins()
        globals().update(RegistryAuthPlugin=auth, RegistryTopicPlugin=topic)
        return globals()[name]
    raise AttributeError(name)


# -------------------------------------------------------------------------------------- the broker process


def broker_config(conf: dict) -> dict:
    plugin = {"registry": conf["registry"], "topic_base": conf["topic_base"]}
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{conf['bind']}:{conf['port']}"}},
        # Only our plugins: no anonymous plugin, no $SYS publisher, no packet logger (it would log passwords).
        "plugins": {
            f"{MODULE}.RegistryAuthPlugin": plugin,
            f"{MODULE}.RegistryTopicPlugin": plugin,
        },
    }


async def serve(conf: dict) -> None:
    from amqtt.broker import Broker

    # Loaded before the first CONNECT; the plugins (imported by amqtt by dotted path) share it.
    registry = registry_for(conf["registry"], conf["topic_base"])
    broker = Broker(broker_config(conf))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, registry.reload)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    log.info("amqtt %s listening on %s:%s (MQTT 3.1.1)", amqtt_version(), conf["bind"], conf["port"])
    await stop.wait()
    log.info("stopping")
    await broker.shutdown()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m {MODULE} <config.json>", file=sys.stderr)
        return 2
    conf = json.loads(Path(argv[0]).read_text())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # amqtt's own INFO lines are per-connection chatter; warnings and errors still reach the log.
    for chatty in ("amqtt", "transitions"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    asyncio.run(serve(conf))
    return 0


# ------------------------------------------------------------------------------ the controller (CLI side)


@dataclass
class EmbeddedBroker(procs.PidFileDaemon):
    """An amqtt broker rooted at ``directory`` (the stack's ``mosquitto/``): config, registry, log, pid."""

    daemon_name = "embedded broker"

    directory: Path
    port: int
    bind: str = "127.0.0.1"
    topic_base: str = "iots6"

    def __post_init__(self):
        self.directory = Path(self.directory)
        self.accounts = AccountStore(self.directory, self.topic_base)
        self.conf_file = self.directory / "embedded-broker.json"
        self.log_file = self.directory / "embedded-broker.log"
        self.pid_file = self.directory / "embedded-broker.pid"

    def write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.accounts.registry_path.exists():
            write_secret(self.accounts.registry_path, "{}\n")
        conf = {
            "bind": self.bind,
            "port": self.port,
            "registry": str(self.accounts.registry_path),
            "topic_base": self.topic_base,
        }
        write_secret(self.conf_file, json.dumps(conf, indent=2) + "\n")

    def pid(self) -> int | None:
        """The live broker pid; a pid file naming some other process (pid reuse) counts as stopped."""
        return procs.read_pid_of(self.pid_file, MODULE)

    def start(self, timeout: float = 15.0) -> int:
        pid = self.pid()
        if pid:
            return pid
        require_amqtt()
        self.write_config()
        proc = procs.spawn(
            [sys.executable, "-m", MODULE, str(self.conf_file)],
            log=self.log_file,
            pid_file=self.pid_file,
            cwd=self.directory,
        )
        try:
            procs.wait_for_port(self.bind, self.port, timeout, "embedded broker", self.log_file, proc.pid)
        except OperationFailed:
            procs.stop_pid(proc.pid, timeout=5)
            self.pid_file.unlink(missing_ok=True)
            raise
        return proc.pid

    def reload(self) -> bool:
        """Re-read the account registry (SIGHUP). False if the broker is not running."""
        pid = self.pid()
        if not pid:
            return False
        os.kill(pid, signal.SIGHUP)
        return True


if __name__ == "__main__":
    # Run in the module amqtt imports the plugins from (not in `__main__`), so both share one Registry.
    from iotctl.stack import embedded_broker

    sys.exit(embedded_broker.main())
