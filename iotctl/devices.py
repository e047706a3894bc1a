"""Device identity in the active environment: provisioning (broker client + role, registry row, config token,
0600 credentials file), listing and retiring.

The broker side goes through ``iotctl.broker.identities`` (Mosquitto's dynamic security over MQTT, or the
embedded broker's registry).  The registry row and the config token are written by ONE implementation,
``iots6_platform.core.registry``, reached one of two ways:

- the local stacks (``local``, ``docker``, a registered stack of kind ``local``): directly in the environment's
  database;
- a VM or AKS environment: through the config server's admin API over HTTPS (``iotctl.registry_api``), with the
  environment's ``config-admin-token`` and CA, so the operator's machine never needs a path to the database.

One device is made all-or-nothing:

1. the registry row and the config token are written (in one database transaction on the direct path, which
   stays open until step 3; in one request on the API path);
2. the broker client is created (or re-enabled with a new password) and the credentials file is written next to
   its final name;
3. the transaction commits and the file takes its name.

A failure before the end deletes the new broker client (or disables a re-used one), leaves no file and undoes
the registry: the direct path rolls back; the API path retires a row it created or re-activated (a retired row
with no token, which the next ``provision`` brings back).  If even that clean-up cannot reach the broker, the
device is left "broker only" and the next ``device provision`` of the same id repairs it without ``--rotate``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from iotctl.broker.identities import ACTIVE
from iotctl.device_id import validate_device_id
from iotctl.errors import InvalidInput, NotFound
from iotctl.secretfiles import generate_password, write_secret
from iotctl.settings import Settings
from iots6_platform.core import contract


@dataclass(frozen=True)
class DeviceCredentials:
    """Everything a device needs to join; written to its 0600 file and, at flash time, onto the board."""

    device_id: str
    mqtt_host: str
    mqtt_port: int
    mqtt_username: str
    mqtt_password: str
    topic_base: str
    config_url: str
    config_token: str
    provisioned_at: str
    mqtt_tls: bool = False
    #: The CA that signed the broker's certificate (a copy flashed to the board as its trust anchor).
    mqtt_ca_file: str | None = None
    environment: str = "local"

    def public(self) -> dict:
        """The non-secret part, for terminals and --json."""
        data = asdict(self)
        data.pop("mqtt_password")
        data.pop("config_token")
        data["topics"] = {
            channel: contract.topic(self.topic_base, self.device_id, channel)
            for channel in (contract.TELEMETRY, contract.EVENT, contract.STATUS, contract.CONFIG)
        }
        return data


def config_url(settings: Settings) -> str:
    from iotctl.environments import active

    return active(settings).config_url


def device_file(settings: Settings, device_id: str) -> Path:
    """Where the active environment keeps ``device_id``'s credentials."""
    from iotctl.environments import active

    return active(settings).devices_dir / f"{validate_device_id(device_id)}.json"


class _DatabaseRegistry:
    """The registry written directly in the environment's database (the local stacks): the row and the token are
    written inside the caller's transaction, so a failure later in the provisioning rolls them back."""

    def __init__(self, env):
        self.endpoint = env.db_endpoint()  # fails early for an environment whose database iotctl cannot reach
        self.conn = None

    def open(self) -> None:
        from iotctl.db.connect import connect

        self.conn = connect(self.endpoint)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def lock(self, device_id: str):
        from iots6_platform.core import registry

        return registry.device_lock(self.conn, device_id)

    def transaction(self):
        return self.conn.transaction()

    def get(self, device_id: str):
        from iots6_platform.core import registry

        return registry.get(self.conn, device_id)

    def register(self, device_id: str, labels: dict | None) -> str:
        from iots6_platform.core import registry

        return registry.register(self.conn, device_id, labels, new_token_always=True).token

    def undo_register(self, device_id: str, before) -> None:
        """Nothing to do: the caller's transaction rolls the row and the token back."""

    def retire(self, device_id: str) -> bool:
        from iots6_platform.core import registry

        found = registry.retire(self.conn, device_id)
        return bool(found and found[1])

    def list(self) -> list[dict]:
        from iots6_platform.core import registry

        return registry.fleet(self.conn)


class Provisioning:
    """One connection to the environment's broker (as its admin) and its device registry, for any number of
    devices.  The registry is the environment's database on the local stacks, the config server's admin API over
    HTTPS on a VM or AKS (:mod:`iotctl.registry_api`): the same steps either way."""

    def __init__(self, settings: Settings):
        from iotctl.environments import active

        self.settings = settings
        self.env = active(settings)
        if self.env.registry_via_api:
            from iotctl.registry_api import ApiRegistry

            self.registry = ApiRegistry(self.env)
        else:
            self.registry = _DatabaseRegistry(self.env)
        self.broker = None

    def __enter__(self) -> Provisioning:
        self.registry.open()
        try:
            self.broker = self.env.identities().__enter__()
        except BaseException:
            self.registry.close()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        try:
            self.broker.close()
        finally:
            self.registry.close()

    # -- provisioning
    def provision(self, device_id: str, *, rotate: bool = False, labels: dict | None = None):
        """Create ``device_id``'s identity everywhere, in one go. Returns (credentials, path of the 0600 file).

        The registry lock serializes work on one device id across processes (two provisions of the same device
        cannot interleave their broker password, token and credentials file); the config server takes the same
        lock for each of its writes."""
        validate_device_id(device_id)
        with self.registry.lock(device_id):
            return self._provision(device_id, rotate, labels)

    def _provision(self, device_id: str, rotate: bool, labels: dict | None):
        registry, broker, env = self.registry, self.broker, self.env
        state = broker.state(device_id)
        before = registry.get(device_id)
        if state == ACTIVE and before is not None and before.active and not rotate:
            raise InvalidInput(
                f"Device `{device_id}` is already provisioned; pass --rotate to issue new credentials "
                "(the old ones stop working)."
            )
        path = env.devices_dir / f"{device_id}.json"
        staged = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new")
        password = generate_password()
        broker_changed = registry_changed = False
        try:
            with registry.transaction():
                registry_changed = True
                token = registry.register(device_id, labels)
                broker_changed = True  # from here on a failure may have reached the broker
                broker.provision(device_id, password)
                ca = env.ca_file if env.broker.tls else None
                creds = DeviceCredentials(
                    device_id=device_id,
                    mqtt_host=env.broker.host,
                    mqtt_port=env.broker.port,
                    mqtt_username=device_id,
                    mqtt_password=password,
                    topic_base=env.topic_base,
                    config_url=env.config_url,
                    config_token=token,
                    provisioned_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    mqtt_tls=env.broker.tls,
                    mqtt_ca_file=str(ca) if ca else None,
                    environment=env.name,
                )
                write_secret(staged, json.dumps(asdict(creds), indent=2) + "\n")
        except BaseException:
            staged.unlink(missing_ok=True)
            if broker_changed:
                self._undo(device_id, state)
            if registry_changed:
                self._best_effort(registry.undo_register, device_id, before)
            raise
        os.replace(staged, path)
        return creds, path

    def _undo(self, device_id: str, state_before: str | None) -> None:
        """Best effort, back to where the broker was: a client made now is deleted, a retired one disabled again.
        A rotation that failed is left alone: the device may still hold a working password, and the error says to
        run it again."""
        if state_before is None:
            self._best_effort(self.broker.remove, device_id)
        elif state_before != ACTIVE:
            self._best_effort(self.broker.retire, device_id)

    @staticmethod
    def _best_effort(step, *args) -> None:
        # The original error is the one to report; a re-run repairs what this could not.
        with contextlib.suppress(Exception):
            step(*args)

    def retire(self, device_id: str) -> None:
        """Disable the broker client (disconnecting it at once), delete the config token, keep the readings and
        mark the registry row retired."""
        validate_device_id(device_id)
        with self.registry.lock(device_id):
            self._retire(device_id)

    def _retire(self, device_id: str) -> None:
        registry, broker = self.registry, self.broker
        state = broker.state(device_id)
        with registry.transaction():
            if not registry.retire(device_id) and state != ACTIVE:
                raise NotFound(
                    f"Device `{device_id}` is not provisioned in {self.env.label}; `iotctl device fleet` shows the "
                    "fleet."
                )
            if state is not None:
                broker.retire(device_id)
        (self.env.devices_dir / f"{device_id}.json").unlink(missing_ok=True)

    def list(self) -> list[dict]:
        states = self.broker.devices()
        return [{**row, "broker_account": states.get(row["device_id"]) == ACTIVE} for row in self.registry.list()]


@contextmanager
def provisioning(settings: Settings) -> Iterator[Provisioning]:
    with Provisioning(settings) as session:
        yield session


def provision(settings: Settings, device_id: str, *, rotate: bool = False, labels: dict | None = None):
    """Provision one device in the active environment. Returns (credentials, path of the 0600 file)."""
    validate_device_id(device_id)
    with provisioning(settings) as session:
        return session.provision(device_id, rotate=rotate, labels=labels)


def load_credentials(settings: Settings, device_id: str) -> DeviceCredentials:
    path = device_file(settings, device_id)
    known = {f.name for f in fields(DeviceCredentials)}
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(
            f"No credentials for device `{device_id}` in `{path.parent}`; run `iotctl device provision {device_id}`."
        ) from None
    except ValueError:
        raise InvalidInput(
            f"Credentials file `{path}` is not valid JSON; provision the device again (--rotate)."
        ) from None
    return DeviceCredentials(**{k: v for k, v in data.items() if k in known})


def ensure_provisioned(settings: Settings, device_id: str) -> DeviceCredentials:
    """Credentials of ``device_id``, provisioning it first when it has none."""
    try:
        return load_credentials(settings, device_id)
    except NotFound:
        return provision(settings, device_id)[0]


def list_devices(settings: Settings) -> list[dict]:
    """Registered devices with their registry state and whether the broker has an enabled client for them.

    ``dropped``: readings the device reported dropping before it could send them (full offline buffer), summed
    over its stored readings by the ingest; ``dropped_at``: the time of the newest reading that reported any.
    """
    with provisioning(settings) as session:
        return session.list()


def retire(settings: Settings, device_id: str) -> None:
    validate_device_id(device_id)
    with provisioning(settings) as session:
        session.retire(device_id)
