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
    with db() as conn:
        return jsonify(_representation(conn))


def _write(doc: dict, patch: bool):
    who, expected = actor(), expected_version()
    try:
        with db() as conn:
            _version, change = store.write_fleet(conn, doc, who, expected, patch=patch)
            representation = _representation(conn)
    except store.VersionMismatch as exc:
        abort(412, f"fleet defaults are at version {exc.current}, not {exc.expected}; GET and retry")
    if change:
        state().metrics.writes.labels("fleet").inc()
        notices.fleet_changed()
    return jsonify(representation)


@bp.put("/v1/fleet/config")
def put_fleet():
    return _write(json_body(), patch=False)


@bp.patch("/v1/fleet/config")
def patch_fleet():
    return _write(json_body(), patch=True)


@bp.get("/v1/fleet/history")
def fleet_history():
    limit = history_limit()
    with db() as conn:
        return jsonify({"device_id": None, "history": store.history(conn, None, limit)})
