"""Mosquitto's password hash (PBKDF2-HMAC-SHA512, 12-byte salt), for the three places no broker can hash for us.

1. Seeding a broker's ``dynamic-security.json`` before its first start: the admin account must exist before
   anyone can ask the broker to create accounts, and the Docker host need not have ``mosquitto_ctrl``.
2. Migrating a stack from the old password file: its ``$7$`` hashes move into dynamic security as they are,
   so every device keeps its password (nobody knows the plaintext any more).
3. The embedded (amqtt) broker's own account store, which verifies passwords itself.

Everything else (new devices, rotations) goes to the broker in plaintext over its control API and the broker
hashes it.  Mosquitto 2.0 uses 101 iterations for both ``mosquitto_passwd`` and dynamic security; we keep that:
every password iotctl generates carries 192 random bits, so the iteration count adds nothing an attacker notices.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

ITERATIONS = 101
SALT_BYTES = 12


@dataclass(frozen=True)
class PasswordHash:
    salt: bytes
    digest: bytes
    iterations: int = ITERATIONS

    def __repr__(self) -> str:  # a hash is not a password, but it has no business in a log either
        return f"PasswordHash(iterations={self.iterations})"

    @classmethod
    def create(cls, password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> PasswordHash:
        salt = os.urandom(SALT_BYTES) if salt is None else salt
        return cls(salt, hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations), iterations)

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """A Mosquitto password-file hash: ``$7$<iterations>$<base64 salt>$<base64 digest>``."""
        try:
            empty, kind, iterations, salt, digest = text.split("$")
            if empty or kind != "7":
                raise ValueError(text)
            return cls(base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True), int(iterations))
        except (ValueError, TypeError):
            raise ValueError("not a Mosquitto $7$ password hash") from None

    @classmethod
    def from_dynsec(cls, entry: dict) -> PasswordHash:
        """The ``password``/``salt``/``iterations`` fields of a client in ``dynamic-security.json``."""
        return cls(base64.b64decode(entry["salt"]), base64.b64decode(entry["password"]), int(entry["iterations"]))

    def encoded(self) -> str:
        salt, digest = base64.b64encode(self.salt).decode(), base64.b64encode(self.digest).decode()
        return f"$7${self.iterations}${salt}${digest}"

    def dynsec(self) -> dict:
        """The fields dynamic security stores for a client's password."""
        return {
            "password": base64.b64encode(self.digest).decode(),
            "salt": base64.b64encode(self.salt).decode(),
            "iterations": self.iterations,
        }

    def verify(self, password: str) -> bool:
        computed = hashlib.pbkdf2_hmac("sha512", password.encode(), self.salt, self.iterations)
        return hmac.compare_digest(computed, self.digest)


def hash_password(password: str) -> str:
    """A new ``$7$`` hash of ``password`` (the embedded broker's registry format)."""
    return PasswordHash.create(password).encoded()


def verify_password(password: str, hashed: str) -> bool:
    try:
        return PasswordHash.parse(hashed).verify(password)
    except ValueError:
        return False
