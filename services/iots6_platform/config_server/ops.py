"""Operations resource: health, Prometheus metrics and the OpenAPI document (no authentication)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from iots6_platform.config_server import openapi, store
from iots6_platform.config_server.runtime import db, state

bp = Blueprint("ops", __name__)
log = logging.getLogger("iots6_platform.config_server.ops")


@bp.get("/healthz")
def healthz():
    notifier = state().notifier
    mqtt = "off" if notifier is None else ("connected" if notifier.connected else "disconnected")
    try:
        with db() as conn:
            conn.execute(store.SQL_PING)
    except Exception as exc:  # any failure to reach the database means unhealthy, never a 500
        log.warning("health check: database unreachable (%s)", exc.__class__.__name__)
        return jsonify({"status": "unavailable", "database": "unreachable", "mqtt": mqtt}), 503
    return jsonify({"status": "ok", "database": "ok", "mqtt": mqtt})


@bp.get("/metrics")
def metrics():
    body, content_type = state().metrics.exposition()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi_document():
    return jsonify(openapi.build())
