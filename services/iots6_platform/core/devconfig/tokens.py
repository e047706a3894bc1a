"""Config-server bearer tokens of devices: issued at provisioning, stored hashed, compared in constant time.

A token is 256 random bits (URL-safe base64).  Only its SHA-256 is stored in ``device_tokens``: tokens are
random, not passwords, so a fast hash is enough to make a stolen table useless.  The device must already exist
in ``devices`` (provisioning inserts it first); this module never creates devices.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from iots6_platform.core.errors import InvalidInput, NotFound

TOKEN_BYTES = 32

SQL_DEVICE_EXISTS = "SELECT 1 FROM devices WHERE device_id = %s"
SQL_TOKEN_FOR_DEVICE = "SELECT token_hash FROM device_tokens WHERE device_id = %s"
SQL_DEVICE_FOR_HASH = "SELECT device_id FROM device_tokens WHERE token_hash = %s"
SQL_INSERT_TOKEN = """
INSERT INTO device_tokens (device_id, token_hash) VALUES (%(device_id)s, %(hash)s)
ON CONFLICT (device_id) DO UPDATE SET token_hash = EXCLUDED.token_hash, rotated_at = now()
"""

#: Results of :func:`verify_device_token`.
VALID, OTHER_DEVICE, INVALID = "valid", "other_device", "invalid"


def new_token() -> str:
    """A fresh config token: 256 random bits, URL-safe base64."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def issue_device_token(conn, device_id: str, rotate: bool = False) -> str:
    """Create (or with ``rotate`` replace) the config token of an existing device; returns the token, once.

    Raises NotFound when ``device_id`` is not in ``devices`` and InvalidInput when it already has a token and
    ``rotate`` is False.
    """
    token = new_token()
    with conn.transaction():
        if conn.execute(SQL_DEVICE_EXISTS, (device_id,)).fetchone() is None:
            raise NotFound(f"Device `{device_id}` is not registered; provision it with `iotctl device provision`.")
        existing = conn.execute(SQL_TOKEN_FOR_DEVICE + " FOR UPDATE", (device_id,)).fetchone()
        if existing is not None and not rotate:
            raise InvalidInput(f"Device `{device_id}` already has a config token; pass --rotate to issue a new one.")
        conn.execute(SQL_INSERT_TOKEN, {"device_id": device_id, "hash": hash_token(token)})
    return token


def verify_device_token(conn, device_id: str, token: str) -> str:
    """VALID when ``token`` is ``device_id``'s, OTHER_DEVICE when it belongs to another device, else INVALID.

    The device's stored hash is compared with :func:`hmac.compare_digest`; only when that fails is the hash
    looked up to tell "someone else's token" (403) from "no valid token" (401).
    """
    presented = hash_token(token)
    row = conn.execute(SQL_TOKEN_FOR_DEVICE, (device_id,)).fetchone()
    if row is not None and hmac.compare_digest(bytes(row[0]), presented):
        return VALID
    if conn.execute(SQL_DEVICE_FOR_HASH, (presented,)).fetchone() is not None:
        return OTHER_DEVICE
    return INVALID
