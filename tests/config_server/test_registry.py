"""The device registry over the admin API (Flask test client, real database): register, look up, rotate the
config token, retire; idempotent writes, one-sentence 4xx errors, tokens that work for the device-facing route."""

from __future__ import annotations

import uuid

import pytest

from iots6_platform.core.devconfig.tokens import INVALID, VALID, verify_device_token

from .conftest import register


@pytest.fixture
def new_id() -> str:
    return "reg-" + uuid.uuid4().hex[:12]


def _fetch(client, device_id, token):
    return client.get(f"/v1/devices/{device_id}/config", headers={"Authorization": f"Bearer {token}"})


def test_register_is_idempotent_and_issues_a_token_once(client, admin, database, new_id):
    made = client.put(f"/v1/devices/{new_id}", json={"labels": {"location": "lab"}}, headers=admin)
    assert made.status_code == 201, made.json
    assert made.headers["Location"] == f"/v1/devices/{new_id}" and made.headers["Cache-Control"] == "no-store"
    body = made.json
    assert body["device_id"] == new_id and body["labels"] == {"location": "lab"}
    assert body["retired_at"] is None and body["has_token"] is True and body["last_seen"] is None
    token = body["config_token"]
    assert len(token) >= 43
    assert _fetch(client, new_id, token).status_code == 200

    # The same request again changes nothing: 200, no new token, the old one still valid.
    again = client.put(f"/v1/devices/{new_id}", json={"labels": {"location": "lab"}}, headers=admin)
    assert again.status_code == 200 and again.json["config_token"] is None
    # No body keeps the labels.
    bare = client.put(f"/v1/devices/{new_id}", headers=admin)
    assert bare.status_code == 200 and bare.json["labels"] == {"location": "lab"}
    with database.connect() as conn:
        assert verify_device_token(conn, new_id, token) == VALID
        assert conn.execute("SELECT labels FROM devices WHERE device_id = %s", (new_id,)).fetchone()[0] == {
            "location": "lab"
        }
    assert client.get(f"/v1/devices/{new_id}", headers=admin).json == {
        k: v for k, v in bare.json.items() if k != "config_token"
    }
    assert token not in client.get(f"/v1/devices/{new_id}", headers=admin).get_data(as_text=True)


def test_new_token_replaces_the_old_one(client, admin, new_id):
    old = client.put(f"/v1/devices/{new_id}", headers=admin).json["config_token"]
    rotated = client.post(f"/v1/devices/{new_id}/token", headers=admin)
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    new = rotated.json["config_token"]
    assert new != old and rotated.json["device_id"] == new_id
    assert _fetch(client, new_id, old).status_code == 401
    assert _fetch(client, new_id, new).status_code == 200


def test_retire_revokes_the_token_keeps_the_row_and_register_brings_it_back(client, admin, database):
    device = register(database)  # registered the way the local path does
    url = f"/v1/devices/{device.device_id}"
    retired = client.delete(url, headers=admin)
    assert retired.status_code == 200, retired.json
    assert retired.json["retired_at"] is not None and retired.json["has_token"] is False
    assert _fetch(client, device.device_id, device.token).status_code == 401
    # Retiring again: same answer, nothing changes.
    again = client.delete(url, headers=admin)
    assert again.status_code == 200 and again.json["retired_at"] == retired.json["retired_at"]
    # A retired device gets no token until it is registered again, which issues a new one.
    refused = client.post(f"{url}/token", headers=admin)
    assert refused.status_code == 409 and "retired" in refused.json["detail"]
    back = client.put(url, headers=admin)
    assert back.status_code == 200 and back.json["retired_at"] is None
    assert _fetch(client, device.device_id, back.json["config_token"]).status_code == 200
    with database.connect() as conn:
        assert verify_device_token(conn, device.device_id, device.token) == INVALID
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'iots6_config_registry_changes_total{action="retire"} 1.0' in metrics
    assert 'iots6_config_registry_changes_total{action="register"} 1.0' in metrics


def test_the_device_list_carries_the_registry_fields(client, admin, database, new_id):
    client.put(f"/v1/devices/{new_id}", json={"labels": {"location": "attic"}}, headers=admin)
    with database.connect(autocommit=True) as conn:
        conn.execute(
            "UPDATE devices SET last_seen = now(), status = 'online', fw = '0.2.0', rssi = -61, dropped_total = 3 "
            "WHERE device_id = %s",
            (new_id,),
        )
    rows = {d["device_id"]: d for d in client.get("/v1/devices", headers=admin).json["devices"]}
    row = rows[new_id]
    assert row["labels"] == {"location": "attic"} and row["status"] == "online" and row["fw"] == "0.2.0"
    assert row["rssi"] == -61 and row["dropped"] == 3 and row["last_seen"] and row["retired"] is False
    assert row["has_token"] is True and row["version"] == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("PUT", "/v1/devices/has.dot", None, 400, "device id"),
        ("PUT", "/v1/devices/" + "x" * 65, None, 400, "device id"),
        ("PUT", "/v1/devices/{id}", [1], 400, "JSON object"),
        ("PUT", "/v1/devices/{id}", {"labels": {}, "token": "mine"}, 400, "unknown key"),
        ("PUT", "/v1/devices/{id}", {"labels": {"location": 5}}, 422, "labels"),
        ("PUT", "/v1/devices/{id}", {"labels": {f"k{i}": "v" for i in range(17)}}, 422, "at most 16"),
        ("GET", "/v1/devices/{id}", None, 404, "not registered"),
        ("DELETE", "/v1/devices/{id}", None, 404, "not registered"),
        ("POST", "/v1/devices/{id}/token", None, 404, "not registered"),
    ],
)
def test_bad_requests_are_one_sentence_4xx(client, admin, new_id, method, path, body, status, words):
    response = client.open(path.format(id=new_id), method=method, json=body, headers=admin)
    assert response.status_code == status, response.json
    assert words in response.json["detail"] and set(response.json) <= {"error", "detail", "key"}


def test_registry_routes_need_the_admin_token(client, database, new_id):
    device = register(database)
    for method, path in (
        ("GET", f"/v1/devices/{device.device_id}"),
        ("PUT", f"/v1/devices/{new_id}"),
        ("DELETE", f"/v1/devices/{device.device_id}"),
        ("POST", f"/v1/devices/{device.device_id}/token"),
    ):
        assert client.open(path, method=method).status_code == 401
        assert client.open(path, method=method, headers=device.auth).status_code == 401
    # Nothing was made, nothing was retired.
    assert _fetch(client, device.device_id, device.token).status_code == 200
    with database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM devices WHERE device_id = %s", (new_id,)).fetchone()[0] == 0
