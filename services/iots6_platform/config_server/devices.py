"""Admin resource: devices, their configuration overrides and history (admin bearer token)."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify

from iots6_platform.config_server import notices, store
from iots6_platform.config_server.runtime import (
    actor,
    db,
    expected_version,
    history_limit,
    json_body,
    require_admin,
    state,
)
from iots6_platform.core import contract

bp = Blueprint("devices", __name__)
bp.before_request(require_admin)


def _unknown(device_id: str):
    abort(404, f"device {device_id} is not registered; provision it first")


def _representation(conn, device_id: str) -> dict:
    own = store.device(conn, device_id) if contract.valid_device_id(device_id) else None
    if own is None:
        _unknown(device_id)
    found = store.device_effective(conn, device_id)
    return {
        "device_id": device_id,
        "version": own.version,
        "overrides": own.doc,
        "updated_at": own.updated_at.isoformat() if own.updated_at else None,
        "updated_by": own.updated_by,
        "effective": found.body,
        "etag": found.etag,
    }


@bp.get("/v1/devices")
def list_devices():
    """Configuration versions and the registry's fields (labels, last seen, status, ...) of every device."""
    with db() as conn:
        return jsonify({"devices": store.devices(conn)})


@bp.get("/v1/devices/<device_id>/overrides")
def get_overrides(device_id: str):
    with db() as conn:
        return jsonify(_representation(conn, device_id))


def _write(device_id: str, doc: dict, patch: bool):
    if not contract.valid_device_id(device_id):
        _unknown(device_id)
    who, expected = actor(), expected_version()
    try:
        with db() as conn:
            result = store.write_device(conn, device_id, doc, who, expected, patch=patch)
            if result is None:
                _unknown(device_id)
            representation = _representation(conn, device_id)
    except store.VersionMismatch as exc:
        abort(412, f"overrides of {device_id} are at version {exc.current}, not {exc.expected}; GET and retry")
    if result[1]:
        state().metrics.writes.labels("device").inc()
        notices.device_changed(device_id)
    return jsonify(representation)


@bp.put("/v1/devices/<device_id>/overrides")
def put_overrides(device_id: str):
    return _write(device_id, json_body(), patch=False)


@bp.patch("/v1/devices/<device_id>/overrides")
def patch_overrides(device_id: str):
    return _write(device_id, json_body(), patch=True)


@bp.delete("/v1/devices/<device_id>/overrides")
def delete_overrides(device_id: str):
    return _write(device_id, {}, patch=False)


@bp.get("/v1/devices/<device_id>/history")
def device_history(device_id: str):
    limit = history_limit()
    with db() as conn:
        if not contract.valid_device_id(device_id) or store.device(conn, device_id) is None:
            _unknown(device_id)
        return jsonify({"device_id": device_id, "history": store.history(conn, device_id, limit)})
