"""The device registry of a VM or AKS environment, reached through its config server's admin API over HTTPS.

The config server writes the registry with the platform's own code (``iots6_platform.core.registry``), the same
the local path runs against its database; iotctl authenticates with the environment's ``config-admin-token``
and verifies the server against the environment's CA.  :class:`ApiRegistry` gives ``iotctl.devices`` the same
steps as the direct path: ``get``, ``register`` (a new token every time, as provisioning hands out new
credentials), ``undo_register`` (after a later step failed), ``retire``, ``list``.

What the API cannot give is a transaction around the broker step: a registration is committed when its request
returns, so a failure afterwards is undone by retiring the row again (when it was not active before).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from iotctl.errors import OperationFailed


@dataclass(frozen=True)
class Entry:
    device_id: str
    active: bool


class ApiRegistry:
    def __init__(self, env):
        from iotctl.devconfig.client import AdminClient
        from iotctl.environments import CONFIG_ADMIN

        if not env.config_url:
            raise OperationFailed(f"{env.label} names no config server; re-register it with --config-url.")
        self.client = AdminClient(env.config_url, env.secret(CONFIG_ADMIN), ca_file=env.ca_file, env=env.name)

    def open(self) -> None:
        """Nothing to open: each call is one HTTPS request (a refused token or an unreachable server fails the
        first one, before the broker is touched)."""

    def close(self) -> None:
        pass

    def lock(self, _device_id: str):
        """The config server serializes each write per device itself."""
        return contextlib.nullcontext()

    def transaction(self):
        return contextlib.nullcontext()

    def get(self, device_id: str) -> Entry | None:
        found = self.client.registry_entry(device_id)
        return None if found is None else Entry(device_id, found["retired_at"] is None)

    def register(self, device_id: str, labels: dict[str, Any] | None) -> str:
        token = self.client.register(device_id, labels).get("config_token")
        return token or self.client.new_token(device_id)

    def undo_register(self, device_id: str, before: Entry | None) -> None:
        if before is None or not before.active:
            self.client.retire(device_id)

    def retire(self, device_id: str) -> bool:
        """Retire the row; True when it was active before."""
        before = self.get(device_id)
        if before is None:
            return False
        self.client.retire(device_id)
        return before.active

    def list(self) -> list[dict]:
        return self.client.fleet()
