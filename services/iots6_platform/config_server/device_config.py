"""Device-facing resource: ``GET /v1/devices/<id>/config`` with the device's own bearer token."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, make_response, request

from iots6_platform.config_server import store
from iots6_platform.config_server.runtime import bearer_token, db, state
from iots6_platform.core.devconfig import tokens

bp = Blueprint("device_config", __name__)
#: What this resource answers with, besides the shared schemas in :mod:`iots6_platform.config_server.openapi`.
SCHEMAS: dict[str, dict] = {}


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    # Weak comparison for If-None-Match (RFC 9110 13.1.2): W/"x" matches "x".
    return any(tag.strip().removeprefix("W/") == f'"{etag}"' for tag in header.split(","))


@bp.get("/v1/devices/<device_id>/config")
def get_config(device_id: str):
    """Effective configuration of one device (for the device itself)
    ---
    get:
      security: [{deviceToken: []}]
      parameters:
        - {name: If-None-Match, in: header, required: false, schema: {type: string}}
      responses:
        200:
          description: The configuration
          headers: {ETag: ETag, Cache-Control: {schema: {type: string}}}
          content: {application/json: {schema: EffectiveConfig}}
        304:
          description: Unchanged since the ETag in If-None-Match
          headers: {ETag: ETag}
        401: Unauthorized
        403: Forbidden
        404: NotFound
    """
    metrics = state().metrics
    token = bearer_token()
    if token is None:
        metrics.auth_failures.labels("missing").inc()
        abort(401, "a device bearer token is required (Authorization: Bearer <token>)")
    with db() as conn:
        # An id that is not a device id matches no token row: the answer is 401 or 403, never a hint.
        verdict = tokens.verify_device_token(conn, device_id, token)
        if verdict is tokens.TokenVerdict.INVALID:
            metrics.auth_failures.labels("invalid").inc()
            abort(401, "the bearer token is not valid")
        if verdict is tokens.TokenVerdict.OTHER_DEVICE:
            metrics.auth_failures.labels("other_device").inc()
            abort(403, "this token belongs to another device")
        if store.retired(conn, device_id):
            metrics.auth_failures.labels("retired").inc()
            abort(403, "this device is retired; provision it again to bring it back")
        found = store.device_effective(conn, device_id)
    if found is None:  # a token whose device vanished between the two queries
        abort(404, f"device {device_id} is not registered")
    if _matches(request.headers.get("If-None-Match"), found.etag):
        metrics.not_modified.inc()
        response = make_response("", 304)
    else:
        metrics.fetches.inc()
        response = jsonify(found.body)
    response.headers["ETag"] = f'"{found.etag}"'
    response.headers["Cache-Control"] = "no-cache"
    return response
