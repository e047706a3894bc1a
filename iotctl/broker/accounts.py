"""Mosquitto accounts: one per device, one per service; passwords hashed, ACLs generated.

The registry is a JSON file (mode 0600) holding usernames, roles and PBKDF2 hashes, never a password.  From it we
render Mosquitto's ``password_file`` and ``acl_file``; a running broker re-reads both on SIGHUP.

Device usernames are their device ids.  Service accounts are named ``svc.<name>``: a ``.`` cannot appear in a
device id, so no device can ever be provisioned under a service's name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from iotctl import contract
from iotctl.errors import InvalidInput, NotFound, OperationFailed
from iotctl.render import render
from iotctl.secretfiles import generate_password, write_secret

ROLE_DEVICE = "device"
ROLE_INGEST = "ingest"
ROLE_OPERATOR = "operator"
ROLE_CONFIG = "config"
SERVICE_ROLES = (ROLE_INGEST, ROLE_OPERATOR, ROLE_CONFIG)
SERVICE_PREFIX = "svc."

# Mosquitto 2.0's password hash: "$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>", 12-byte salt.
_HASH_ITERATIONS = 101
_SALT_BYTES = 12


def hash_password(password: str, salt: bytes | None = None, iterations: int = _HASH_ITERATIONS) -> str:
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    computed = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(base64.b64encode(computed).decode(), digest)


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
        return [Rule("readwrite", contract.subscription(base))]
    if role == ROLE_CONFIG:
        return [Rule("readwrite", f"{base}/+/{contract.CONFIG}")]
    raise ValueError(f"unknown role {role!r}")


class AccountStore:
    """The registry file plus the Mosquitto files rendered from it, all in one directory."""

    def __init__(self, directory: Path, topic_base: str = contract.DEFAULT_TOPIC_BASE):
        self.directory = Path(directory)
        self.topic_base = topic_base
        self.registry_path = self.directory / "accounts.json"
        self.password_file = self.directory / "passwd"
        self.acl_file = self.directory / "acl"

    # -- registry
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
        if role == ROLE_DEVICE and not contract.valid_device_id(username):
            raise InvalidInput(
                f"Device id `{username}` is invalid; use 1-64 characters from A-Z, a-z, 0-9, `_` and `-`."
            )
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
        self.write_broker_files(accounts)
        return password

    def remove(self, username: str) -> None:
        accounts = self.load()
        if username not in accounts:
            raise NotFound(f"Account `{username}` does not exist; `iotctl device list-provisioned` shows them.")
        del accounts[username]
        self._save(accounts)
        self.write_broker_files(accounts)

    def devices(self) -> list[str]:
        return sorted(u for u, a in self.load().items() if a["role"] == ROLE_DEVICE)

    # -- mosquitto files
    def write_broker_files(self, accounts: dict[str, dict] | None = None) -> None:
        accounts = self.load() if accounts is None else accounts
        lines = "".join(f"{user}:{acct['hash']}\n" for user, acct in sorted(accounts.items()))
        write_secret(self.password_file, lines)
        acl = render(
            "mosquitto/acl.j2",
            accounts=[
                {"username": user, "rules": rules_for(acct["role"], user, self.topic_base)}
                for user, acct in sorted(accounts.items())
            ],
        )
        write_secret(self.acl_file, acl)
