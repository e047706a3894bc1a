"""The config server against the real database (Flask test client): device reads, admin writes, history."""

from __future__ import annotations

import pytest

from iots6_platform.core import registry
from iots6_platform.core.devconfig import schema
from iots6_platform.core.devconfig.tokens import verify_device_token


def _config(client, device):
    return client.get(f"/v1/devices/{device.device_id}/config", headers=device.auth)


def test_device_reads_its_effective_config_with_etag_and_304(client, devices):
    a, _ = devices
    first = _config(client, a)
    assert first.status_code == 200, first.json
    assert first.json == {**schema.DEFAULTS, "device_id": a.device_id, "version": 0}
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = client.get(f"/v1/devices/{a.device_id}/config", headers={**a.auth, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    stale = client.get(f"/v1/devices/{a.device_id}/config", headers={**a.auth, "If-None-Match": '"0000"'})
    assert stale.status_code == 200


def test_token_of_one_device_never_reads_another(client, devices):
    a, b = devices
    response = client.get(f"/v1/devices/{b.device_id}/config", headers=a.auth)
    assert response.status_code == 403
    assert response.json["error"] == "forbidden"
    assert "another device" in response.json["detail"]
    assert b.device_id not in response.get_data(as_text=True)


def test_missing_and_wrong_tokens_are_refused(client, devices, admin):
    a, _ = devices
    url = f"/v1/devices/{a.device_id}/config"
    missing = client.get(url)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert set(missing.json) == {"error", "detail"}
    for header in ("Bearer wrong-token", "Basic abc", f"Bearer {a.token}x", admin["Authorization"]):
        response = client.get(url, headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # The admin API refuses a device token, and no token at all.
    assert client.get("/v1/fleet/config", headers=a.auth).status_code == 401
    assert client.get("/v1/devices").status_code == 401
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'iots6_config_auth_failures_total{kind="invalid"} 4.0' in metrics
    assert 'iots6_config_auth_failures_total{kind="missing"} 3.0' in metrics


def test_effective_config_merges_defaults_fleet_and_overrides(client, devices, admin):
    a, b = devices
    fleet = client.put(
        "/v1/fleet/config",
        json={"telemetry_interval_s": 120, "sensors": {"climate": "bme280"}, "labels": {"site": "hq"}},
        headers=admin,
    )
    assert fleet.status_code == 200, fleet.json
    assert fleet.json["version"] == 1
    own = client.patch(
        f"/v1/devices/{a.device_id}/overrides",
        json={"sensors": {"bme280_address": 119}, "labels": {"location": "lab"}, "oled_enabled": False},
        headers=admin,
    )
    assert own.status_code == 200, own.json
    assert own.json["version"] == 1
    body = _config(client, a).json
    assert body["version"] == 2  # fleet 1 + overrides 1
    assert body["telemetry_interval_s"] == 120  # fleet
    assert body["sensors"] == {"climate": "bme280", "bme280_address": 119}  # merged entry by entry
    assert body["labels"] == {"site": "hq", "location": "lab"}
    assert body["oled_enabled"] is False  # override
    assert body["switch_debounce_ms"] == 50  # built-in default
    other = _config(client, b).json
    assert other["version"] == 1 and other["oled_enabled"] is True and other["labels"] == {"site": "hq"}
    # Removing the overrides falls back to the fleet defaults, with a higher version (never reused).
    gone = client.delete(f"/v1/devices/{a.device_id}/overrides", headers=admin)
    assert gone.status_code == 200 and gone.json["overrides"] == {}
    after = _config(client, a).json
    assert after["version"] == 3 and after["oled_enabled"] is True and after["labels"] == {"site": "hq"}


def test_change_moves_the_etag(client, devices, admin):
    a, _ = devices
    etag = _config(client, a).headers["ETag"]
    client.patch(f"/v1/devices/{a.device_id}/overrides", json={"telemetry_interval_s": 30}, headers=admin)
    response = client.get(f"/v1/devices/{a.device_id}/config", headers={**a.auth, "If-None-Match": etag})
    assert response.status_code == 200
    assert response.json["telemetry_interval_s"] == 30
    assert response.headers["ETag"] != etag


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ({"telemetry_interval_s": 2}, "telemetry_interval_s", "between 5 and 3600"),
        ({"telemetry_interval_s": "60"}, "telemetry_interval_s", "integer"),
        ({"oled_enabled": 1}, "oled_enabled", "true or false"),
        ({"oled_brightness": 256}, "oled_brightness", "between 0 and 255"),
        ({"sensors": {"climate": "bmp180"}}, "sensors.climate", "one of"),
        ({"sensors": {"bme280_address": 0x78}}, "sensors.bme280_address", "118, 119"),
        ({"temperature_unit": "K"}, "temperature_unit", "one of"),
        ({"ntp_server": "not a host"}, "ntp_server", "hostname"),
        ({"labels": {f"k{i}": "v" for i in range(17)}}, "labels", "at most 16"),
        ({"labels": {"name": "x" * 129}}, "labels.name", "at most 128"),
        ({"broker_password": "hunter2"}, "broker_password", "not a configuration key"),
    ],
)
def test_invalid_writes_are_rejected_with_the_reason(client, devices, admin, body, key, words):
    a, _ = devices
    for url in (f"/v1/devices/{a.device_id}/overrides", "/v1/fleet/config"):
        response = client.put(url, json=body, headers=admin)
        assert response.status_code == 422, (url, response.json)
        assert response.json["error"] == "invalid_config"
        assert response.json["key"] == key
        assert words in response.json["detail"]
    # Nothing was stored, nothing was recorded.
    assert client.get(f"/v1/devices/{a.device_id}/history", headers=admin).json["history"] == []
    assert client.get("/v1/fleet/config", headers=admin).json["version"] == 0


def test_malformed_bodies_and_unknown_devices(client, admin):
    assert client.put("/v1/fleet/config", data="nope", headers=admin).status_code == 400
    assert client.put("/v1/fleet/config", json=[1, 2], headers=admin).status_code == 400
    for method in ("get", "put", "patch", "delete"):
        response = getattr(client, method)("/v1/devices/ghost/overrides", json={}, headers=admin)
        assert response.status_code == 404, method
        assert response.json == {
            "error": "not_found",
            "detail": "device ghost is not registered; provision it first",
        }
    assert client.get("/v1/devices/ghost/history", headers=admin).status_code == 404
    assert client.get("/v1/devices/ghost/config", headers={"Authorization": "Bearer x"}).status_code == 401
    bad_actor = client.patch("/v1/fleet/config", json={}, headers={**admin, "X-Actor": "a b"})
    assert bad_actor.status_code == 400 and "X-Actor" in bad_actor.json["detail"]


def test_history_records_actor_version_and_diff(client, devices, admin):
    a, _ = devices
    url = f"/v1/devices/{a.device_id}/overrides"
    client.patch(url, json={"telemetry_interval_s": 30}, headers=admin)
    client.patch(
        url,
        json={"telemetry_interval_s": 45, "labels": {"location": "lab"}},
        headers={**admin, "X-Actor": "bob"},
    )
    client.patch(url, json={"telemetry_interval_s": 45}, headers=admin)  # no change: no version, no history
    client.patch(url, json={"telemetry_interval_s": None}, headers={**admin, "X-Actor": ""})  # default actor
    history = client.get(f"/v1/devices/{a.device_id}/history", headers=admin).json
    assert history["device_id"] == a.device_id
    entries = history["history"]
    assert [(e["version"], e["actor"]) for e in entries] == [(3, "admin"), (2, "bob"), (1, "alice")]
    assert entries[2]["change"] == {"telemetry_interval_s": {"old": None, "new": 30}}
    assert entries[1]["change"] == {
        "labels.location": {"old": None, "new": "lab"},
        "telemetry_interval_s": {"old": 30, "new": 45},
    }
    assert entries[0]["change"] == {"telemetry_interval_s": {"old": 45, "new": None}}
    assert all(e["changed_at"] for e in entries)
    limited = client.get(f"/v1/devices/{a.device_id}/history?limit=1", headers=admin).json["history"]
    assert [e["version"] for e in limited] == [3]

    client.put("/v1/fleet/config", json={"led_enabled": False}, headers={**admin, "X-Actor": "carol"})
    fleet = client.get("/v1/fleet/history", headers=admin).json
    assert fleet["device_id"] is None
    assert [(e["version"], e["actor"], e["change"]) for e in fleet["history"]] == [
        (1, "carol", {"led_enabled": {"old": None, "new": False}})
    ]


def test_if_match_guards_concurrent_writes(client, devices, admin):
    a, _ = devices
    url = f"/v1/devices/{a.device_id}/overrides"
    assert client.get(url, headers=admin).json["version"] == 0
    ok = client.patch(url, json={"led_enabled": False}, headers={**admin, "If-Match": '"0"'})
    assert ok.status_code == 200 and ok.json["version"] == 1
    stale = client.patch(url, json={"led_enabled": True}, headers={**admin, "If-Match": "0"})
    assert stale.status_code == 412
    assert "version 1" in stale.json["detail"]
    assert client.get(url, headers=admin).json["overrides"] == {"led_enabled": False}
    fleet = client.put("/v1/fleet/config", json={}, headers={**admin, "If-Match": "7"})
    assert fleet.status_code == 412


def test_device_list_shows_versions(client, devices, admin):
    a, b = devices
    client.patch(f"/v1/devices/{a.device_id}/overrides", json={"led_enabled": False}, headers=admin)
    listed = {d["device_id"]: d for d in client.get("/v1/devices", headers=admin).json["devices"]}
    versions = ("device_id", "version", "overrides_version", "retired", "has_token")
    assert {k: listed[a.device_id][k] for k in versions} == {
        "device_id": a.device_id,
        "version": 1,
        "overrides_version": 1,
        "retired": False,
        "has_token": True,
    }
    assert listed[b.device_id]["version"] == 0  # the registry's fields: tests/config_server/test_registry.py


def test_tokens_are_stored_hashed_and_rotated(database, devices):
    a, b = devices
    with database.connect(autocommit=True) as conn:
        stored = conn.execute("SELECT token_hash FROM device_tokens WHERE device_id = %s", (a.device_id,)).fetchone()
        assert a.token.encode() not in bytes(stored[0]) and len(bytes(stored[0])) == 32
        assert registry.register(conn, a.device_id, new_token_always=False).token is None  # it has one
        assert registry.rotate_token(conn, "ghost") is None
        new = registry.rotate_token(conn, a.device_id)
        assert verify_device_token(conn, a.device_id, new) == "valid"
        assert verify_device_token(conn, a.device_id, a.token) == "invalid"
        assert verify_device_token(conn, b.device_id, new) == "other_device"
        rotated = conn.execute("SELECT rotated_at FROM device_tokens WHERE device_id = %s", (a.device_id,)).fetchone()
        assert rotated[0] is not None


def test_health_and_metrics(client, devices):
    a, _ = devices
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json == {"status": "ok", "database": "ok", "mqtt": "off"}
    _config(client, a)
    etag = _config(client, a).headers["ETag"]
    client.get(f"/v1/devices/{a.device_id}/config", headers={**a.auth, "If-None-Match": etag})
    text = client.get("/metrics").get_data(as_text=True)
    assert "iots6_config_fetches_total 2.0" in text
    assert "iots6_config_not_modified_total 1.0" in text
    assert 'iots6_config_requests_total{endpoint="device_config.get_config",status="304"} 1.0' in text


def test_health_is_503_when_the_database_is_gone(database, pg):
    from iots6_platform.config_server import close_app, create_app

    app = create_app({"DATABASE_URL": pg.url("no_such_db"), "DATABASE_PASSWORD": pg.password, "ADMIN_TOKEN": "t"})
    try:
        response = app.test_client().get("/healthz")
        assert response.status_code == 503
        assert response.json["database"] == "unreachable"
    finally:
        close_app(app)


def test_retired_device_is_refused(client, devices, database):
    a, _ = devices
    with database.connect(autocommit=True) as conn:
        conn.execute("UPDATE devices SET retired_at = now() WHERE device_id = %s", (a.device_id,))
    response = _config(client, a)
    assert response.status_code == 403 and "retired" in response.json["detail"]


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("put", '{"labels": ' + "[" * 1900 + "]" * 1900 + "}"),  # too deep to parse at all
        ("patch", '{"labels": ' + '{"a": ' * 600 + "1" + "}" * 600 + "}"),  # parses; the merge patch recursed
    ],
)
def test_deeply_nested_bodies_are_a_400_not_a_crash(client, admin, method, body):
    response = getattr(client, method)(
        "/v1/fleet/config", data=body, headers={**admin, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.data[:200]
    assert response.json["error"] == "bad_request" and "deeper than 32 levels" in response.json["detail"]
    assert client.get("/v1/fleet/config", headers=admin).json["version"] == 0
