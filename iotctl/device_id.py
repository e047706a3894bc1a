"""The device-id check with the operator's one-sentence message; the rule itself is the contract's
(``iots6_platform.core.contract.valid_device_id``, ``DEVICE_ID_PATTERN``).  Low in the tree on purpose: the broker's
account registry, device provisioning and the config-server client all check ids here."""

from __future__ import annotations

from iotctl.errors import InvalidInput
from iots6_platform.core import contract

#: The pattern in words, for messages and help texts.
DEVICE_ID_RULE = "1-64 characters from A-Z, a-z, 0-9, `_` and `-`"


def validate_device_id(device_id: str) -> str:
    """``device_id`` if the contract accepts it, else InvalidInput naming it and the rule."""
    if not contract.valid_device_id(device_id):
        raise InvalidInput(f"Device id `{device_id}` is invalid; use {DEVICE_ID_RULE}.")
    return device_id
