"""Broker identities: roles, service usernames and each role's ACL, plus the embedded broker's account registry.

``rules_for`` is the one definition of what an account may do; Mosquitto's dynamic security roles
(``iotctl.broker.dynsec``) and the embedded broker's checks (``iotctl.stack.embedded_broker``) are both derived
from it.  Device usernames are their device ids.  Service accounts are named ``svc.<name>``: a ``.`` cannot
appear in a device id, so no device can ever be provisioned under a service's name.

:class:`AccountStore` is the embedded (amqtt) broker's registry: a JSON file (mode 0600) of usernames, roles and
PBKDF2 hashes, never a password.  Mosquitto keeps its accounts itself (dynamic security); stacks made before it
did are migrated from this same file format (``iotctl.broker.dynsec.state_from_registry``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from iotctl.broker.pwhash import hash_password, verify_password
from iotctl.device_id import validate_device_id
from iotctl.errors import InvalidInput, NotFound, OperationFailed
from iotctl.secretfiles import generate_password, write_secret
from iots6_platform.core import contract

ROLE_DEVICE = "device"
ROLE_INGEST = "ingest"
ROLE_OPERATOR = "operator"
ROLE_CONFIG = "config"
SERVICE_ROLES = (ROLE_INGEST, ROLE_OPERATOR, ROLE_CONFIG)
SERVICE_PREFIX = "svc."


@dataclass(frozen=True)
class Rule:
    access: str  # read | write | readwrite
    topic: str


def service_username(role: str) -> str:
    return SERVICE_PREFIX + role


def rules_for(role: str, username: str, base: str) -> list[Rule]:
    """The ACL of one account. Devices: their own topics only."""
    if role == ROLE_DEVICE:
        return [
            Rule("write", contract.topic(base, username, contract.TELEMETRY)),
            Rule("write", contract.topic(base, username, contract.EVENT)),
            Rule("write", contract.topic(base, username, contract.STATUS)),
            Rule("write", contract.topic(base, username, contract.LEGACY)),
            Rule("read", contract.topic(base, username, contract.CONFIG)),
        ]
    if role == ROLE_INGEST:
        return [Rule("read", contract.subscription(base))]
    if role == ROLE_OPERATOR:
        # The operator watches (`iotctl tail`); publishing as any device would let a leaked laptop credential
        # forge readings, so it may not.
        return [Rule("read", contract.subscription(base))]
    if role == ROLE_CONFIG:
        return [Rule("write", f"{base}/+/{contract.CONFIG}")]
    raise ValueError(f"unknown role {role!r}")


class AccountStore:
    """The embedded broker's account registry, ``accounts.json`` in ``directory``."""

    def __init__(self, directory: Path, topic_base: str = contract.DEFAULT_TOPIC_BASE):
        self.directory = Path(directory)
        self.topic_base = topic_base
        self.registry_path = self.directory / "accounts.json"

    def load(self) -> dict[str, dict]:
        if not self.registry_path.exists():
            return {}
        try:
            return json.loads(self.registry_path.read_text())
        except ValueError:
            raise OperationFailed(
                f"Account registry `{self.registry_path}` is corrupt; restore it from backup or reset the stack."
            ) from None

    def _save(self, accounts: dict[str, dict]) -> None:
        write_secret(self.registry_path, json.dumps(accounts, indent=2, sort_keys=True) + "\n")

    def exists(self, username: str) -> bool:
        return username in self.load()

    def add(self, username: str, role: str, *, rotate: bool = False, password: str | None = None) -> str:
        """Create (or with ``rotate`` replace) an account; returns the new plaintext password, once."""
        if role == ROLE_DEVICE:
            validate_device_id(username)
        accounts = self.load()
        if username in accounts and not rotate:
            raise InvalidInput(f"Account `{username}` already exists; pass --rotate to issue a new password.")
        password = password or generate_password()
        accounts[username] = {
            "role": role,
            "hash": hash_password(password),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._save(accounts)
        return password

    def ensure_services(self, passwords: dict[str, str]) -> bool:
        """The service accounts (role -> password of its ``svc.<role>`` account) exist with these passwords;
        True if one was added or changed (the embedded broker then needs a reload)."""
        accounts = self.load()
        changed = False
        for role, password in sorted(passwords.items()):
            username = service_username(role)
            current = accounts.get(username)
            if current and current["role"] == role and verify_password(password, current["hash"]):
                continue
            self.add(username, role, rotate=current is not None, password=password)
            changed = True
        return changed

    def remove(self, username: str) -> None:
        accounts = self.load()
        if username not in accounts:
            raise NotFound(f"Account `{username}` does not exist; `iotctl device fleet` shows the fleet.")
        del accounts[username]
        self._save(accounts)

    def devices(self) -> list[str]:
        return sorted(u for u, a in self.load().items() if a["role"] == ROLE_DEVICE)
