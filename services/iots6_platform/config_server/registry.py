"""Admin resource: the device registry (admin bearer token) — register, look up, rotate the config token, retire.

The writes are :mod:`iots6_platform.core.registry`, the same code ``iotctl device provision`` runs against the
database of a local stack; here they serve ``iotctl device provision|retire --env <vm|aks>``, which reaches the
config server over HTTPS and never the database.  The broker identity is not made here (the operator's iotctl
makes it over MQTT with the broker's dynamic-security admin).

``PUT /v1/devices/{id}`` is idempotent: it registers the device (201) or brings a retired one back (200), and
issues a config token only when the device has none; the token is in that one answer (``Cache-Control:
no-store``) and only its hash is stored.  ``POST .../token`` issues a new one; ``DELETE`` retires (the row and
the readings stay, the token goes; again: 200, nothing changes).
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, jsonify, request

from iots6_platform.config_server.runtime import actor, db, require_admin, state
from iots6_platform.core import contract, registry
from iots6_platform.core.devconfig.schema import ConfigInvalid

bp = Blueprint("registry", __name__)
bp.before_request(require_admin)
log = logging.getLogger("iots6.config_server.registry")
BODY_KEYS = {"labels"}

_WHEN = {"type": ["string", "null"], "format": "date-time"}
#: A registry row's fields (also in each item of ``GET /v1/devices``, :mod:`iots6_platform.config_server.devices`).
REGISTRY_FIELDS = {
    "device_id": {"type": "string"},
    "labels": {
        "type": "object",
        "maxProperties": registry.MAX_LABELS,
        "additionalProperties": {"type": "string", "maxLength": registry.LABEL_VALUE_MAX},
        "description": "free-form labels of the registry row, e.g. `location`",
    },
    "created_at": {"type": "string", "format": "date-time"},
    "retired_at": {**_WHEN, "description": "null while the device is active"},
    "last_seen": {**_WHEN, "description": "time of its newest stored reading"},
    "status": {
        "enum": [*contract.STATUS_VALUES, None],
        "description": "its retained status, as the ingest last saw it",
    },
    "fw": {"type": ["string", "null"], "description": "firmware version it last reported"},
    "rssi": {"type": ["integer", "null"], "description": "Wi-Fi RSSI it last reported, dBm"},
}
REGISTRY_REQUIRED = ["device_id", "labels", "created_at", "retired_at", "last_seen", "status", "fw", "rssi"]
_DEVICE = {
    "type": "object",
    "description": "A device's row in the registry.",
    "required": [*REGISTRY_REQUIRED, "has_token"],
    "properties": {**REGISTRY_FIELDS, "has_token": {"type": "boolean", "description": "it holds a config token"}},
}
#: What this resource answers with, besides the shared schemas in :mod:`iots6_platform.config_server.openapi`.
SCHEMAS = {
    "Device": _DEVICE,
    "RegistrationRequest": {
        "type": "object",
        "description": "Optional; without `labels` the row keeps its labels.",
        "additionalProperties": False,
        "properties": {"labels": REGISTRY_FIELDS["labels"]},
    },
    "Registration": {
        **_DEVICE,
        "description": "The registry row after the registration, with the config token when one was issued (the "
        "device had none); shown once, only its hash is stored.",
        "required": [*_DEVICE["required"], "config_token"],
        "properties": {
            **_DEVICE["properties"],
            "config_token": {
                "type": ["string", "null"],
                "description": "the device's new config token, or null when it kept the one it has",
            },
        },
    },
    "Token": {
        "type": "object",
        "required": ["device_id", "config_token"],
        "properties": {"device_id": {"type": "string"}, "config_token": {"type": "string"}},
    },
}


def _valid_id(device_id: str) -> str:
    if not contract.valid_device_id(device_id):
        abort(400, f"device id {device_id!r} is invalid; use 1-64 characters from A-Z, a-z, 0-9, _ and -")
    return device_id


def _unknown(device_id: str):
    abort(404, f"device {device_id} is not registered; register it with PUT /v1/devices/{device_id}")


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"  # it carries a config token
    return response


def _labels_from_body() -> dict | None:
    """``labels`` of the optional JSON body (None: keep the row's); an empty body is ``{}``."""
    if not request.get_data(cache=True):
        return None
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        abort(400, 'the request body must be a JSON object, e.g. {"labels": {"location": "lab"}}')
    unknown = sorted(set(body) - BODY_KEYS)
    if unknown:
        abort(400, f"unknown key {unknown[0]!r} in the request body; it takes only `labels`")
    labels = body.get("labels")
    if "labels" in body:
        problem = registry.check_labels(labels)
        if problem:
            raise ConfigInvalid("labels", f"labels: {problem}")
    return labels


@bp.get("/v1/devices/<device_id>")
def get_device(device_id: str):
    """A device's registry row
    ---
    get:
      responses:
        200: {description: The registry row, content: {application/json: {schema: Device}}}
        401: Unauthorized
        404: NotFound
    """
    with db() as conn:
        found = registry.get(conn, device_id)
    if found is None:
        _unknown(device_id)
    return jsonify(found.to_json())


@bp.put("/v1/devices/<device_id>")
def register_device(device_id: str):
    """Register a device, or bring a retired one back (idempotent); issues a config token when it has none
    ---
    put:
      parameters: [XActor]
      requestBody: {required: false, content: {application/json: {schema: RegistrationRequest}}}
      responses:
        200:
          description: Already registered, or brought back
          headers: {Cache-Control: NoStore}
          content: {application/json: {schema: Registration}}
        201:
          description: Registered
          headers: {Cache-Control: NoStore, Location: Location}
          content: {application/json: {schema: Registration}}
        400: BadRequest
        401: Unauthorized
        422: InvalidLabels
    """
    _valid_id(device_id)
    labels, who = _labels_from_body(), actor()
    with db() as conn:
        done = registry.register(conn, device_id, labels, new_token_always=False)
    what = "registered" if done.created else ("re-activated" if done.reactivated else "already registered")
    if done.created or done.reactivated or done.token:
        state().metrics.registry_changes.labels("register").inc()
        log.info("device %s %s by %s%s", device_id, what, who, "; config token issued" if done.token else "")
    response = jsonify({**done.device.to_json(), "config_token": done.token})
    response.status_code = 201 if done.created else 200
    if done.created:
        response.headers["Location"] = f"/v1/devices/{device_id}"
    return _no_store(response)


@bp.post("/v1/devices/<device_id>/token")
def rotate_token(device_id: str):
    """Issue a new config token for an active device (the old one stops working)
    ---
    post:
      parameters: [XActor]
      responses:
        200:
          description: The new token, shown once
          headers: {Cache-Control: NoStore}
          content: {application/json: {schema: Token}}
        400: BadRequest
        401: Unauthorized
        404: NotFound
        409: Retired
    """
    _valid_id(device_id)
    who = actor()
    with db() as conn:
        token = registry.rotate_token(conn, device_id)
        if token is None:
            found = registry.get(conn, device_id)
    if token is None:
        if found is None:
            _unknown(device_id)
        abort(409, f"device {device_id} is retired; register it again with PUT /v1/devices/{device_id}")
    state().metrics.registry_changes.labels("token").inc()
    log.info("device %s: new config token issued by %s", device_id, who)
    return _no_store(jsonify({"device_id": device_id, "config_token": token}))


@bp.delete("/v1/devices/<device_id>")
def retire_device(device_id: str):
    """Retire a device: its config token is deleted, the row and readings stay (idempotent)
    ---
    delete:
      parameters: [XActor]
      responses:
        200: {description: The retired row, content: {application/json: {schema: Device}}}
        400: BadRequest
        401: Unauthorized
        404: NotFound
    """
    _valid_id(device_id)
    who = actor()
    with db() as conn:
        done = registry.retire(conn, device_id)
    if done is None:
        _unknown(device_id)
    after, was_active = done
    if was_active:
        state().metrics.registry_changes.labels("retire").inc()
        log.info("device %s retired by %s", device_id, who)
    return jsonify(after.to_json())
