"""One provisioning interface for device identities on a broker, whatever keeps them.

:class:`DynsecIdentities` drives Mosquitto's dynamic security over its control API (every Mosquitto iotctl runs
or reaches); :class:`EmbeddedIdentities` edits the embedded amqtt broker's own account registry.  Device
provisioning (``iotctl.devices``) only sees this interface:

- ``state(id)``: ``active``, ``disabled`` or ``None`` (unknown);
- ``provision(id, password)``: create the device's client (client id = username = device id) and its role, or
  re-enable an existing one with this new password;
- ``retire(id)``: disable the client and disconnect it at once; ``False`` when there was none;
- ``remove(id)``: delete client and role (undoing a provisioning that failed half-way);
- ``devices()``: every device the broker knows, with its state.
"""

from __future__ import annotations

from typing import Protocol

from iotctl.broker import dynsec
from iotctl.broker.accounts import ROLE_DEVICE, SERVICE_PREFIX

ACTIVE, DISABLED = "active", "disabled"


class BrokerIdentities(Protocol):
    def state(self, device_id: str) -> str | None: ...

    def provision(self, device_id: str, password: str) -> None: ...

    def retire(self, device_id: str) -> bool: ...

    def remove(self, device_id: str) -> None: ...

    def devices(self) -> dict[str, str]: ...

    def close(self) -> None: ...


class DynsecIdentities:
    """Devices as dynamic-security clients, each with its own role ``device.<id>``."""

    def __init__(self, admin: dynsec.DynsecAdmin, topic_base: str):
        self.admin = admin
        self.topic_base = topic_base

    def __enter__(self) -> DynsecIdentities:
        if self.admin._client is None:
            self.admin.open()
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        self.admin.close()

    def state(self, device_id: str) -> str | None:
        client = self.admin.get_client(device_id)
        if client is None:
            return None
        return DISABLED if client.get("disabled") else ACTIVE

    def provision(self, device_id: str, password: str) -> None:
        role = dynsec.device_role(device_id)
        acls = dynsec.acls_for(ROLE_DEVICE, device_id, self.topic_base)
        create_role = {"command": "createRole", "rolename": role, "acls": acls}
        create_client = {
            "command": "createClient",
            "username": device_id,
            "password": password,
            "clientid": device_id,
            "roles": [{"rolename": role}],
        }
        role_answer, client_answer = self.admin.execute([create_role, create_client])
        if role_answer.get("error") == dynsec.ROLE_EXISTS:
            self.admin.ensure_role(role, acls)
        else:
            self.admin.check(create_role, role_answer)
        if client_answer.get("error") != dynsec.CLIENT_EXISTS:
            self.admin.check(create_client, client_answer)
            return
        # Known already (rotation, or a retired device coming back): new password, own role, enabled last.
        commands = [
            {"command": "setClientPassword", "username": device_id, "password": password},
            {"command": "setClientId", "username": device_id, "clientid": device_id},
            {"command": "addClientRole", "username": device_id, "rolename": role},
            {"command": "enableClient", "username": device_id},
        ]
        for command, answer in zip(commands, self.admin.execute(commands), strict=True):
            # addClientRole on a client that has the role already answers with an error; that is the goal.
            if command["command"] != "addClientRole":
                self.admin.check(command, answer)

    def retire(self, device_id: str) -> bool:
        return self.admin.disable_client(device_id)

    def remove(self, device_id: str) -> None:
        self.admin.delete_client(device_id)
        self.admin.delete_role(dynsec.device_role(device_id))

    def devices(self) -> dict[str, str]:
        found = {}
        for client in self.admin.list_clients():
            username = client.get("username", "")
            roles = {r.get("rolename") for r in client.get("roles", [])}
            if username.startswith(SERVICE_PREFIX) or dynsec.device_role(username) not in roles:
                continue  # services, the admin, and clients someone made by hand
            found[username] = DISABLED if client.get("disabled") else ACTIVE
        return found


class EmbeddedIdentities:
    """Devices in the embedded broker's registry; a change is signalled to the running broker (SIGHUP)."""

    def __init__(self, broker):
        self.broker = broker  # iotctl.stack.embedded_broker.EmbeddedBroker
        self.store = broker.accounts

    def __enter__(self) -> EmbeddedIdentities:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        pass

    def state(self, device_id: str) -> str | None:
        return ACTIVE if self.store.exists(device_id) else None

    def provision(self, device_id: str, password: str) -> None:
        self.store.add(device_id, ROLE_DEVICE, rotate=True, password=password)
        self.broker.reload()

    def retire(self, device_id: str) -> bool:
        if not self.store.exists(device_id):
            return False
        self.store.remove(device_id)
        self.broker.reload()
        return True

    def remove(self, device_id: str) -> None:
        self.retire(device_id)

    def devices(self) -> dict[str, str]:
        return dict.fromkeys(self.store.devices(), ACTIVE)
