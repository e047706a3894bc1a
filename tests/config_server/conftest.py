"""Fixtures for the config server: an app on the real per-test database, registered devices with tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from iots6_platform.config_server import close_app, create_app
from iots6_platform.core import registry

ADMIN_TOKEN = "admin-" + uuid.uuid4().hex


@dataclass
class Device:
    device_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def register(database, device_id: str | None = None) -> Device:
    """Register a device and issue its config token, as provisioning does (iots6_platform.core.registry)."""
    device_id = device_id or "dev-" + uuid.uuid4().hex[:12]
    with database.connect(autocommit=True) as conn:
        return Device(device_id, registry.register(conn, device_id, new_token_always=True).token)


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Actor": "alice"}


@pytest.fixture
def app(database):
    """The app on this test's database, MQTT notices off."""
    app = create_app({"DATABASE_URL": database.url, "DATABASE_PASSWORD": database.password, "ADMIN_TOKEN": ADMIN_TOKEN})
    app.config["TESTING"] = True
    yield app
    close_app(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def devices(database) -> Iterator[tuple[Device, Device]]:
    yield register(database), register(database)
