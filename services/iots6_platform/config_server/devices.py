"""Admin resource: devices, their configuration overrides and history (admin bearer token)."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify

from iots6_platform.config_server import notices, registry, store
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

#: What this resource answers with, besides the shared schemas in :mod:`iots6_platform.config_server.openapi`.
SCHEMAS = {
    "Overrides": {
        "type": "object",
        "required": ["device_id", "version", "overrides", "effective", "etag", "updated_at", "updated_by"],
        "properties": {
            "device_id": {"type": "string"},
            "version": {"type": "integer", "minimum": 0, "description": "version of the overrides"},
            "overrides": "ConfigDocument",
            "effective": "EffectiveConfig",
            "etag": {"type": "string", "description": "ETag the device sees (without quotes)"},
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
            "updated_by": {"type": ["string", "null"]},
        },
    },
    "DeviceList": {
        "type": "object",
        "required": ["devices"],
        "properties": {
            "devices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "version",
                        "overrides_version",
                        "retired",
                        "has_token",
                        *registry.REGISTRY_REQUIRED,
                        "dropped",
                        "dropped_at",
                    ],
                    "properties": {
                        **registry.REGISTRY_FIELDS,
                        "dropped": {
                            "type": "integer",
                            "description": "readings the device reported dropping before it could send them",
                        },
                        "dropped_at": {
                            "type": ["string", "null"],
                            "format": "date-time",
                            "description": "newest reading that reported any dropped",
                        },
                        "version": {"type": "integer", "description": "effective version"},
                        "overrides_version": {"type": "integer"},
                        "retired": {"type": "boolean"},
                        "has_token": {"type": "boolean"},
                    },
                },
            }
        },
    },
    "History": {
        "type": "object",
        "required": ["device_id", "history"],
        "properties": {
            "device_id": {"type": ["string", "null"], "description": "null: the fleet defaults"},
            "history": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "version", "actor", "changed_at", "change"],
                    "properties": {
                        "id": {"type": "integer"},
                        "version": {"type": "integer", "description": "version of the document after this change"},
                        "actor": {"type": "string", "description": "X-Actor of the request"},
                        "changed_at": {"type": "string", "format": "date-time"},
                        "change": {
                            "type": "object",
                            "description": "by dotted key: old and new value (null = absent)",
                            "additionalProperties": {
                                "type": "object",
                                "required": ["old", "new"],
                                "properties": {"old": {}, "new": {}},
                            },
                        },
                    },
                },
            },
        },
    },
}


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
    """Registered devices: configuration versions and registry rows
    ---
    get:
      responses:
        200: {description: The devices, content: {application/json: {schema: DeviceList}}}
        401: Unauthorized
    """
    with db() as conn:
        return jsonify({"devices": [device.as_json() for device in store.devices(conn)]})


@bp.get("/v1/devices/<device_id>/overrides")
def get_overrides(device_id: str):
    """A device's overrides and effective configuration
    ---
    get:
      responses:
        200: {description: The overrides, content: {application/json: {schema: Overrides}}}
        401: Unauthorized
        404: NotFound
    """
    with db() as conn:
        return jsonify(_representation(conn, device_id))


def _write(device_id: str, doc: dict, patch: bool):
    if not contract.valid_device_id(device_id):
        _unknown(device_id)
    who, expected = actor(), expected_version()
    try:
        with db() as conn:
            written = store.write_device(conn, device_id, doc, who, expected, patch=patch)
            if written is None:
                _unknown(device_id)
            representation = _representation(conn, device_id)
    except store.VersionMismatch as exc:
        abort(412, f"overrides of {device_id} are at version {exc.current}, not {exc.expected}; GET and retry")
    if written.change:
        state().metrics.writes.labels("device").inc()
        notices.device_changed(device_id)
    return jsonify(representation)


@bp.put("/v1/devices/<device_id>/overrides")
def put_overrides(device_id: str):
    """Replace a device's overrides
    ---
    put:
      requestBody: {required: true, content: {application/json: {schema: ConfigDocument}}}
      parameters: [IfMatch, XActor]
      responses:
        200: {description: The document after the change, content: {application/json: {schema: Overrides}}}
        400: BadRequest
        401: Unauthorized
        404: NotFound
        412: PreconditionFailed
        422: InvalidConfig
    """
    return _write(device_id, json_body(), patch=False)


@bp.patch("/v1/devices/<device_id>/overrides")
def patch_overrides(device_id: str):
    """Merge-patch a device's overrides
    ---
    patch:
      requestBody: {required: true, content: {application/json: {schema: ConfigPatch}}}
      parameters: [IfMatch, XActor]
      responses:
        200: {description: The document after the change, content: {application/json: {schema: Overrides}}}
        400: BadRequest
        401: Unauthorized
        404: NotFound
        412: PreconditionFailed
        422: InvalidConfig
    """
    return _write(device_id, json_body(), patch=True)


@bp.delete("/v1/devices/<device_id>/overrides")
def delete_overrides(device_id: str):
    """Remove all overrides of a device
    ---
    delete:
      parameters: [IfMatch, XActor]
      responses:
        200: {description: The document after the change, content: {application/json: {schema: Overrides}}}
        400: BadRequest
        401: Unauthorized
        404: NotFound
        412: PreconditionFailed
        422: InvalidConfig
    """
    return _write(device_id, {}, patch=False)


@bp.get("/v1/devices/<device_id>/history")
def device_history(device_id: str):
    """Changes to a device's overrides, newest first
    ---
    get:
      parameters: [Limit]
      responses:
        200: {description: The history, content: {application/json: {schema: History}}}
        400: BadRequest
        401: Unauthorized
        404: NotFound
    """
    limit = history_limit()
    with db() as conn:
        if not contract.valid_device_id(device_id) or store.device(conn, device_id) is None:
            _unknown(device_id)
        entries = store.history(conn, device_id, limit)
    return jsonify({"device_id": device_id, "history": [entry.as_json() for entry in entries]})
