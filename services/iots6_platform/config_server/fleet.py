"""Admin resource: the fleet-wide defaults and their history (admin bearer token)."""

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
from iots6_platform.core.devconfig import schema

bp = Blueprint("fleet", __name__)
bp.before_request(require_admin)

#: What this resource answers with, besides the shared schemas (its history is the devices' ``History``).
SCHEMAS = {
    "Fleet": {
        "type": "object",
        "required": ["version", "config", "effective", "updated_at", "updated_by"],
        "properties": {
            "version": {"type": "integer", "minimum": 0},
            "config": "ConfigDocument",
            "effective": "FleetEffectiveConfig",
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
            "updated_by": {"type": ["string", "null"]},
        },
    },
}


def _representation(conn) -> dict:
    doc = store.fleet(conn)
    return {
        "version": doc.version,
        "config": doc.doc,
        "updated_at": doc.updated_at.isoformat() if doc.updated_at else None,
        "updated_by": doc.updated_by,
        "effective": schema.effective(doc.doc, {}),
    }


@bp.get("/v1/fleet/config")
def get_fleet():
    """The fleet-wide defaults
    ---
    get:
      responses:
        200: {description: The fleet defaults, content: {application/json: {schema: Fleet}}}
        401: Unauthorized
    """
    with db() as conn:
        return jsonify(_representation(conn))


def _write(doc: dict, patch: bool):
    who, expected = actor(), expected_version()
    try:
        with db() as conn:
            written = store.write_fleet(conn, doc, who, expected, patch=patch)
            representation = _representation(conn)
    except store.VersionMismatch as exc:
        abort(412, f"fleet defaults are at version {exc.current}, not {exc.expected}; GET and retry")
    if written.change:
        state().metrics.writes.labels("fleet").inc()
        notices.fleet_changed()
    return jsonify(representation)


@bp.put("/v1/fleet/config")
def put_fleet():
    """Replace the fleet defaults
    ---
    put:
      requestBody: {required: true, content: {application/json: {schema: ConfigDocument}}}
      parameters: [IfMatch, XActor]
      responses:
        200: {description: The document after the change, content: {application/json: {schema: Fleet}}}
        400: BadRequest
        401: Unauthorized
        412: PreconditionFailed
        422: InvalidConfig
    """
    return _write(json_body(), patch=False)


@bp.patch("/v1/fleet/config")
def patch_fleet():
    """Merge-patch the fleet defaults
    ---
    patch:
      requestBody: {required: true, content: {application/json: {schema: ConfigPatch}}}
      parameters: [IfMatch, XActor]
      responses:
        200: {description: The document after the change, content: {application/json: {schema: Fleet}}}
        400: BadRequest
        401: Unauthorized
        412: PreconditionFailed
        422: InvalidConfig
    """
    return _write(json_body(), patch=True)


@bp.get("/v1/fleet/history")
def fleet_history():
    """Changes to the fleet defaults, newest first
    ---
    get:
      parameters: [Limit]
      responses:
        200: {description: The history, content: {application/json: {schema: History}}}
        400: BadRequest
        401: Unauthorized
    """
    limit = history_limit()
    with db() as conn:
        entries = store.history(conn, None, limit)
    return jsonify({"device_id": None, "history": [entry.as_json() for entry in entries]})
