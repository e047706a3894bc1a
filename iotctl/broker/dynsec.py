"""Mosquitto's dynamic security plugin: the broker keeps its clients, roles and ACLs itself and changes them live.

Every Mosquitto iotctl runs or reaches (native stack, Docker stack, VM, AKS) loads
``mosquitto_dynamic_security.so`` with its state in ``dynamic-security.json`` next to the broker's persistence.
There are two ways in:

- **Before the broker's first start**, :func:`seed_state` writes that file: the ``admin`` client (the only one
  allowed on ``$CONTROL/dynamic-security/v1``), the service clients and every role.  :func:`state_from_registry`
  does the same for a stack made when accounts lived in a password file, carrying each device's existing hash
  over, so old device passwords keep working.
- **While it runs**, :class:`DynsecAdmin` sends commands over MQTT as ``admin``; the broker applies them at once
  (disabling a client also disconnects it) and saves the file itself.  No file rewrite, no SIGHUP.

Roles: one per service (``svc.ingest``, ``svc.config``, ``svc.operator``), each with the ACL of
``iotctl.broker.accounts.rules_for``; and **one role per device** (``device.<id>``) holding that device's own
topics.  Dynamic security in Mosquitto 2.0 (Debian 12 ships 2.0.11) does not expand ``%u``/``%c`` in ACL topics
(checked: a ``publishClientSend iots6/%u/telemetry`` rule denies ``iots6/d1/telemetry`` for user ``d1``), so a
shared device role with patterns cannot express "only your own topics"; a role per device can, and a device's
role is created and removed together with its client.  A ``.`` never appears in a device id, so ``device.<id>``
never collides with a service role.

Default access: nothing may be published, subscribed or received unless a role allows it (unsubscribing is always
allowed).  So a device's SUBSCRIBE outside its own config topic is refused in the SUBACK (MQTT 5 reason 0x87,
MQTT 3.1.1 failure 0x80), and it never receives another device's messages.

Brokers that iotctl does not start itself and that run no Python (the AKS chart's broker pod) apply the same
definition from a file: :func:`platform_json` writes the default access, the platform roles with their ACLs and
the service clients, one record per line, to ``infra/helm/iots6/files/mosquitto/dynsec-platform.json``
(``python -m iotctl.broker.dynsec > …``; a test fails when that copy differs).
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from iotctl.broker.accounts import ROLE_DEVICE, SERVICE_ROLES, AccountStore, rules_for, service_username
from iotctl.broker.pwhash import PasswordHash
from iotctl.errors import AuthRefused, InvalidInput, OperationFailed, Unreachable
from iotctl.secretfiles import write_secret

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
ADMIN_USERNAME = "admin"
ADMIN_ROLE = "admin"
DEVICE_ROLE_PREFIX = "device."
STATE_FILE = "dynamic-security.json"
PLUGIN_FILE = "mosquitto_dynamic_security.so"
#: Where Debian, Alpine (the eclipse-mosquitto image), Homebrew and source builds put the plugin.
PLUGIN_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/arm-linux-gnueabihf",
    "/usr/lib",
    "/usr/local/lib",
    "/opt/homebrew/lib",
)
#: The plugin's path inside the eclipse-mosquitto image.
IMAGE_PLUGIN_PATH = "/usr/lib/mosquitto_dynamic_security.so"

DEFAULT_ACL_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": True,
}

#: Stands for the topic base in :func:`platform_json`'s output; a deployment writes its own base in its place.
TOPIC_BASE_PLACEHOLDER = "{topicBase}"

#: Error strings of the plugin (Mosquitto 2.0) that provisioning treats as "already so".
CLIENT_EXISTS = "Client already exists"
CLIENT_NOT_FOUND = "Client not found"
ROLE_EXISTS = "Role already exists"
ROLE_NOT_FOUND = "Role not found"


class DynsecError(OperationFailed):
    """The broker refused a dynamic-security command; ``error`` is the plugin's own text."""

    def __init__(self, message: str, command: str = "", error: str = ""):
        super().__init__(message)
        self.command = command
        self.error = error


# ----------------------------------------------------------------------------------------------- the plugin


def find_plugin() -> str | None:
    for directory in PLUGIN_DIRS:
        candidate = Path(directory) / PLUGIN_FILE
        if candidate.exists():
            return str(candidate)
    return None


def require_plugin() -> str:
    found = find_plugin()
    if not found:
        raise InvalidInput(
            f"Mosquitto's dynamic security plugin `{PLUGIN_FILE}` was not found in {', '.join(PLUGIN_DIRS)}; "
            "install Mosquitto 2.0 or newer (apt-get install mosquitto)."
        )
    return found


# ------------------------------------------------------------------------------------------------- roles


def device_role(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + device_id


def acls_for(role: str, username: str, topic_base: str) -> list[dict[str, Any]]:
    """The dynamic-security ACL entries of one account, from ``rules_for``: writing is ``publishClientSend``,
    reading is ``subscribePattern`` (which topic filters may be subscribed) plus ``publishClientReceive`` (which
    messages may be delivered)."""
    acls = []
    for rule in rules_for(role, username, topic_base):
        if rule.access in ("write", "readwrite"):
            acls.append(_acl("publishClientSend", rule.topic))
        if rule.access in ("read", "readwrite"):
            acls.append(_acl("subscribePattern", rule.topic))
            acls.append(_acl("publishClientReceive", rule.topic))
            if role == "ingest" and rule.topic.endswith("#"):
                # Several ingest workers share one subscription ($share/<group>/<base>/#); the plugin checks the
                # filter as written, prefix included.
                acls.append(_acl("subscribePattern", f"$share/+/{rule.topic}"))
    return acls


def admin_acls() -> list[dict[str, Any]]:
    """The admin may use the control API and nothing else (no telemetry, no config topics)."""
    return [
        _acl("publishClientSend", CONTROL_TOPIC + "/#"),
        _acl("publishClientReceive", CONTROL_TOPIC + "/#"),
        _acl("subscribePattern", CONTROL_TOPIC + "/#"),
    ]


def platform_roles(topic_base: str) -> dict[str, list[dict[str, Any]]]:
    """Every role except the devices' own: the admin's and one per service (named like the service client)."""
    roles = {ADMIN_ROLE: admin_acls()}
    for role in SERVICE_ROLES:
        roles[service_username(role)] = acls_for(role, service_username(role), topic_base)
    return roles


def platform_definition(topic_base: str = TOPIC_BASE_PLACEHOLDER) -> dict[str, list[dict[str, Any]]]:
    """Everything a platform broker holds besides its devices, as records: the default access, every ACL of every
    platform role (:func:`platform_roles`) and the service clients, each with the role named like it.

    ``service`` names a client's secret (``mqtt-<service>-password`` in Key Vault).  The admin client is not listed:
    each deployment makes it first, with its own secret, before anything else can be done.
    """
    return {
        "defaultACLAccess": [{"acltype": acltype, "allow": allow} for acltype, allow in DEFAULT_ACL_ACCESS.items()],
        "roleACLs": [{"rolename": name, **acl} for name, acls in platform_roles(topic_base).items() for acl in acls],
        "clients": [
            {"username": service_username(role), "rolename": service_username(role), "service": role}
            for role in SERVICE_ROLES
        ],
    }


def platform_json() -> str:
    """:func:`platform_definition` with the topic base left as ``TOPIC_BASE_PLACEHOLDER``, as JSON with one record
    per line, so that a POSIX shell with sed and grep (the chart's seed sidecar) can read it."""
    sections = list(platform_definition().items())
    lines = [
        "{",
        '  "about": "Generated by `python -m iotctl.broker.dynsec` from iotctl/broker/dynsec.py (the definition '
        "every broker of the platform applies); do not edit. "
        f'{TOPIC_BASE_PLACEHOLDER} stands for the topic base.",',
    ]
    for i, (section, records) in enumerate(sections):
        lines.append(f'  "{section}": [')
        lines += [f"    {json.dumps(r)}{',' if j < len(records) - 1 else ''}" for j, r in enumerate(records)]
        lines.append("  ]" + ("," if i < len(sections) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _acl(acltype: str, topic: str, allow: bool = True) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "allow": allow}


def _acl_key(acl: dict[str, Any]) -> tuple:
    return (acl["acltype"], acl["topic"], bool(acl.get("allow", True)))


# ------------------------------------------------------------------------------------ the state file (offline)


def seed_state(
    admin_password: str,
    topic_base: str,
    services: dict[str, str],
    devices: dict[str, PasswordHash] | None = None,
) -> dict[str, Any]:
    """A complete ``dynamic-security.json`` for a broker's first start.

    ``services``: role -> password of its ``svc.<role>`` client; ``devices``: device id -> existing hash (a
    migration keeps each device's password without knowing it).
    """
    roles = platform_roles(topic_base)
    clients = [_client_entry(ADMIN_USERNAME, PasswordHash.create(admin_password), [ADMIN_ROLE], "iotctl admin")]
    for role, password in sorted(services.items()):
        username = service_username(role)
        clients.append(_client_entry(username, PasswordHash.create(password), [username]))
    for device_id, hashed in sorted((devices or {}).items()):
        roles[device_role(device_id)] = acls_for(ROLE_DEVICE, device_id, topic_base)
        clients.append(_client_entry(device_id, hashed, [device_role(device_id)], clientid=device_id))
    return {
        "defaultACLAccess": dict(DEFAULT_ACL_ACCESS),
        "clients": clients,
        "groups": [],
        "roles": [{"rolename": name, "acls": acls} for name, acls in sorted(roles.items())],
    }


def state_from_registry(
    registry: dict[str, dict], admin_password: str, topic_base: str, services: dict[str, str]
) -> dict[str, Any]:
    """Migrate an account registry of the password-file era (``accounts.json``): every device keeps its hash."""
    devices = {}
    for username, account in registry.items():
        if account.get("role") != ROLE_DEVICE:
            continue  # service accounts are seeded from the current secret files
        try:
            devices[username] = PasswordHash.parse(account["hash"])
        except (KeyError, ValueError):
            raise InvalidInput(
                f"Account `{username}` in the old registry has no Mosquitto `$7$` hash; fix or remove it, then "
                "run the command again."
            ) from None
    return seed_state(admin_password, topic_base, services, devices)


def _client_entry(
    username: str, hashed: PasswordHash, roles: list[str], textname: str = "", clientid: str | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"username": username, **hashed.dynsec(), "roles": [{"rolename": r} for r in roles]}
    if textname:
        entry["textname"] = textname
    if clientid:
        entry["clientid"] = clientid
    return entry


def write_initial_state(
    state_file: Path, legacy: AccountStore, admin_password: str, topic_base: str, services: dict[str, str]
) -> str | None:
    """Write ``state_file`` when there is none (its broker must not be running): migrated from the password-file
    era's registry ``legacy`` when there is one (devices keep their passwords; the old ``accounts.json``,
    ``passwd`` and ``acl`` are renamed ``*.pre-dynsec``), else seeded.  Returns ``migrated``, ``seeded`` or None
    (kept).  The native stack's Mosquitto and the Docker stack's both start from here."""
    if state_file.exists():
        return None
    state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    old = legacy.load()
    if old:
        state = state_from_registry(old, admin_password, topic_base, services)
    else:
        state = seed_state(admin_password, topic_base, services)
    write_secret(state_file, json.dumps(state, indent=2) + "\n")
    for name in (legacy.registry_path.name, "passwd", "acl"):
        path = legacy.directory / name
        if path.exists():
            path.rename(path.with_name(name + ".pre-dynsec"))
    return "migrated" if old else "seeded"


def load_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except OSError:
        return {}
    except ValueError:
        raise OperationFailed(
            f"Broker state `{path}` is not valid JSON; restore it from a backup or recreate the stack."
        ) from None


def password_matches(state: dict[str, Any], username: str, password: str) -> bool:
    """Whether ``username`` in a saved state has ``password`` (False when absent or without a password)."""
    for client in state.get("clients", []):
        if client.get("username") == username:
            try:
                return PasswordHash.from_dynsec(client).verify(password)
            except (KeyError, ValueError, TypeError):
                return False
    return False


# ------------------------------------------------------------------------------------ the control API (live)


class DynsecAdmin:
    """A connection as ``admin`` to ``$CONTROL/dynamic-security/v1``; one command batch in flight at a time.

    Use as a context manager.  Each batch is one PUBLISH of ``{"commands": [...]}``; the broker answers with one
    message of ``responses`` in the same order on the response topic, which every admin session subscribed to it
    receives (checked: a second session sees the first one's answers), so ours are picked out by the
    ``correlationData`` we put on each command.
    """

    def __init__(self, endpoint, timeout: float = 10.0, where: str = ""):
        self.endpoint = endpoint
        self.timeout = timeout
        self.where = where or f"`{endpoint.host}:{endpoint.port}`"
        self._client = None
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._answers: dict[str, list[dict]] = {}
        self._pending: set[str] = set()

    def __repr__(self) -> str:
        return f"DynsecAdmin({self.endpoint!r})"

    # -- connection
    def __enter__(self) -> DynsecAdmin:
        self.open()
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def open(self) -> None:
        from iotctl.mqtt import connect

        client = connect(self.endpoint, client_id=f"iotctl-admin-{uuid.uuid4().hex[:10]}", on_message=self._on_message)
        granted = threading.Event()
        refused: list[str] = []

        def on_subscribe(_client, _userdata, _mid, reason_codes, _props) -> None:
            refused.extend(str(rc) for rc in reason_codes if rc.is_failure)
            granted.set()

        client.on_subscribe = on_subscribe
        client.subscribe(RESPONSE_TOPIC, qos=1)
        if not granted.wait(self.timeout) or refused:
            client.disconnect()
            client.loop_stop()
            raise AuthRefused(
                f"Broker {self.where} does not let `{self.endpoint.username}` use dynamic security "
                f"({refused[0] if refused else 'no SUBACK'}); check that the broker loads the dynamic security "
                "plugin and that this is its admin account."
            )
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def _on_message(self, _client, _userdata, message) -> None:
        try:
            responses = json.loads(message.payload)["responses"]
            correlation = str(responses[0].get("correlationData", ""))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return  # not an answer of ours
        key = correlation.rsplit(":", 1)[0]
        with self._cond:
            if key in self._pending:  # another admin session's answer otherwise
                self._answers[key] = responses
                self._cond.notify_all()

    # -- commands
    def execute(self, commands: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send one batch; return the broker's responses in order (each may carry ``error``)."""
        if self._client is None:
            raise OperationFailed("DynsecAdmin is not connected; use it as a context manager.")
        commands = [dict(c) for c in commands]
        key = uuid.uuid4().hex
        for i, command in enumerate(commands):
            command["correlationData"] = f"{key}:{i}"
        with self._lock:
            with self._cond:
                self._pending.add(key)
            # QoS 0: the response is the acknowledgement. With QoS 1 the broker's PUBACK and its response are two
            # small writes back to back, and Nagle holds the second until the client's delayed ACK (~40 ms per
            # batch, measured); and a QoS 1 resend after a reconnect could run a command twice.
            info = self._client.publish(CONTROL_TOPIC, json.dumps({"commands": commands}), qos=0)
            with self._cond:
                answered = self._cond.wait_for(lambda: key in self._answers, self.timeout)
                responses = self._answers.pop(key, None)
                self._pending.discard(key)
        if not answered or responses is None:
            raise Unreachable(
                f"Broker {self.where} did not answer dynamic-security command `{commands[0]['command']}` within "
                f"{self.timeout:g} s (publish rc {info.rc}); check that it loads the dynamic security plugin."
            )
        return responses

    def run(self, command: dict[str, Any], *, ok: tuple[str, ...] = ()) -> dict[str, Any]:
        """One command; raise :class:`DynsecError` unless it succeeded or failed with an error in ``ok``."""
        response = self.execute([command])[0]
        self.check(command, response, ok)
        return response

    def check(self, command: dict[str, Any], response: dict[str, Any], ok: tuple[str, ...] = ()) -> None:
        error = response.get("error")
        if error and error not in ok:
            subject = command.get("username") or command.get("rolename") or ""
            raise DynsecError(
                f"Broker {self.where} refused `{command['command']}`"
                + (f" for `{subject}`" if subject else "")
                + f" ({error}); see the broker's log.",
                command["command"],
                error,
            )

    # -- clients
    def get_client(self, username: str) -> dict[str, Any] | None:
        response = self.run({"command": "getClient", "username": username}, ok=(CLIENT_NOT_FOUND,))
        return None if response.get("error") else response["data"]["client"]

    def list_clients(self, page: int = 500) -> list[dict[str, Any]]:
        """Every client with its roles and ``disabled`` flag (paged)."""
        clients: list[dict[str, Any]] = []
        while True:
            response = self.run({"command": "listClients", "verbose": True, "count": page, "offset": len(clients)})
            data = response.get("data", {})
            batch = data.get("clients", [])
            clients += batch
            if not batch or len(clients) >= int(data.get("totalCount", 0)):
                return clients

    def create_client(
        self, username: str, password: str, roles: list[str], clientid: str | None = None, textname: str = ""
    ) -> None:
        command: dict[str, Any] = {
            "command": "createClient",
            "username": username,
            "password": password,
            "roles": [{"rolename": r} for r in roles],
        }
        if clientid:
            command["clientid"] = clientid
        if textname:
            command["textname"] = textname
        self.run(command)

    def set_password(self, username: str, password: str) -> None:
        self.run({"command": "setClientPassword", "username": username, "password": password})

    def disable_client(self, username: str) -> bool:
        """Disable ``username`` and disconnect its connection at once; False when there is no such client."""
        response = self.run({"command": "disableClient", "username": username}, ok=(CLIENT_NOT_FOUND,))
        return not response.get("error")

    def delete_client(self, username: str) -> None:
        self.run({"command": "deleteClient", "username": username}, ok=(CLIENT_NOT_FOUND,))

    # -- roles
    def get_role(self, rolename: str) -> dict[str, Any] | None:
        response = self.run({"command": "getRole", "rolename": rolename}, ok=(ROLE_NOT_FOUND,))
        return None if response.get("error") else response["data"]["role"]

    def ensure_role(self, rolename: str, acls: list[dict[str, Any]]) -> bool:
        """Create ``rolename`` with exactly ``acls``, or bring an existing role's ACLs to exactly that; True if
        anything changed."""
        current = self.get_role(rolename)
        if current is None:
            self.run({"command": "createRole", "rolename": rolename, "acls": acls})
            return True
        have = {_acl_key(a) for a in current.get("acls", [])}
        want = {_acl_key(a) for a in acls}
        commands = [
            {"command": "removeRoleACL", "rolename": rolename, "acltype": t, "topic": topic}
            for t, topic, _allow in sorted(have - want)
        ] + [
            {"command": "addRoleACL", "rolename": rolename, "acltype": t, "topic": topic, "allow": allow}
            for t, topic, allow in sorted(want - have)
        ]
        if commands:
            for command, response in zip(commands, self.execute(commands), strict=True):
                self.check(command, response)
        return bool(commands)

    def delete_role(self, rolename: str) -> None:
        self.run({"command": "deleteRole", "rolename": rolename}, ok=(ROLE_NOT_FOUND,))

    def set_default_access(self, access: dict[str, bool] | None = None) -> None:
        access = access or DEFAULT_ACL_ACCESS
        self.run(
            {
                "command": "setDefaultACLAccess",
                "acls": [{"acltype": k, "allow": v} for k, v in access.items()],
            }
        )


def ensure_platform(
    admin: DynsecAdmin,
    topic_base: str,
    services: dict[str, str] | None = None,
    state: dict[str, Any] | None = None,
) -> list[str]:
    """Bring a running broker's default access, platform roles and service clients to what this iotctl expects.

    ``services``: role -> password; a service client that is missing is created, one whose password in the saved
    ``state`` differs is given the new one (without ``state`` an existing client is left as it is).  Idempotent;
    returns what changed, for progress messages.
    """
    changed = []
    admin.set_default_access()
    for rolename, acls in platform_roles(topic_base).items():
        if admin.ensure_role(rolename, acls):
            changed.append(f"role {rolename}")
    for role, password in sorted((services or {}).items()):
        username = service_username(role)
        if admin.get_client(username) is None:
            admin.create_client(username, password, [username])
            changed.append(f"client {username}")
        elif state is not None and not password_matches(state, username, password):
            admin.set_password(username, password)
            changed.append(f"password of {username}")
    return changed


def reconcile(endpoint, topic_base: str, services: dict[str, str], state_file: Path, where: str = "") -> list[str]:
    """Log in as ``admin`` at ``endpoint`` and :func:`ensure_platform` against the broker's saved ``state_file``:
    what each stack runs after its broker is up (a newer iotctl may have changed a role, a secret file may have
    been rotated).  Returns what changed."""
    with DynsecAdmin(endpoint, where=where) as admin:
        return ensure_platform(admin, topic_base, services, load_state(state_file))


def main() -> None:
    """``python -m iotctl.broker.dynsec``: print :func:`platform_json` (how the chart's copy is regenerated)."""
    sys.stdout.write(platform_json())


if __name__ == "__main__":
    main()
