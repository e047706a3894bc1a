"""Config-server bearer tokens of devices: issued at provisioning, stored hashed, compared in constant time.

A token is 256 random bits (URL-safe base64).  Only its SHA-256 is stored in ``device_tokens``: tokens are
random, not passwords, so a fast hash is enough to make a stolen table useless.  Tokens are written (issued,
rotated, deleted) only by :mod:`iots6_platform.core.registry`, together with the device's row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

TOKEN_BYTES = 32

SQL_TOKEN_FOR_DEVICE = "SELECT token_hash FROM device_tokens WHERE device_id = %s"
SQL_DEVICE_FOR_HASH = "SELECT device_id FROM device_tokens WHERE token_hash = %s"


class TokenVerdict(StrEnum):
    """What :func:`verify_device_token` found (a str, so it also compares equal to its value)."""

    VALID = "valid"
    OTHER_DEVICE = "other_device"  # the token is another device's: 403
    INVALID = "invalid"  # no device's token: 401


VALID, OTHER_DEVICE, INVALID = TokenVerdict.VALID, TokenVerdict.OTHER_DEVICE, TokenVerdict.INVALID


def new_token() -> str:
    """A fresh config token: 256 random bits, URL-safe base64."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def verify_device_token(conn, device_id: str, token: str) -> TokenVerdict:
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
