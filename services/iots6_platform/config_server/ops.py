"""Operations resource: health, Prometheus metrics and the OpenAPI document (no authentication)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from iots6_platform.config_server import openapi, store
from iots6_platform.config_server.runtime import db, state

bp = Blueprint("ops", __name__)
log = logging.getLogger("iots6.config_server.ops")

SCHEMAS = {
    "Health": {
        "type": "object",
        "required": ["status", "database", "mqtt"],
        "properties": {
            "status": {"enum": ["ok", "unavailable"]},
            "database": {"enum": ["ok", "unreachable"]},
            "mqtt": {"enum": ["connected", "disconnected", "off"]},
        },
    },
}


@bp.get("/healthz")
def healthz():
    """200 when the database answers, else 503
    ---
    get:
      security: []
      responses:
        200: {description: Healthy, content: {application/json: {schema: Health}}}
        503: {description: Database unreachable, content: {application/json: {schema: Health}}}
    """
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
    """Prometheus metrics
    ---
    get:
      security: []
      responses:
        200: {description: Prometheus text format, content: {text/plain: {schema: {type: string}}}}
    """
    body, content_type = state().metrics.exposition()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi_document():
    """This document
    ---
    get:
      security: []
      responses:
        200: {description: OpenAPI 3.1 document, content: {application/json: {schema: {type: object}}}}
    """
    return jsonify(openapi.document())
