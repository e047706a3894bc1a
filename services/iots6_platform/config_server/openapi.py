"""The OpenAPI 3.1 document of the config server, built from code and the key schema (never written by hand).

``GET /openapi.json`` serves it; ``docs/openapi.json`` is the same document, regenerated with
``python -m iots6_platform.config_server --openapi > docs/openapi.json`` (a test checks they agree).
"""

from __future__ import annotations

import copy
from typing import Any

from iots6_platform import __version__
from iots6_platform.core import contract
from iots6_platform.core.devconfig import schema

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema_: dict[str, Any], description: str, headers: dict | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema_}}}
    if headers:
        out["headers"] = headers
    return out


def _error(description: str, **extra_headers: Any) -> dict[str, Any]:
    return _json(_ref("Error"), description, extra_headers or None)


WWW_AUTH = {"WWW-Authenticate": {"description": '`Bearer realm="iots6-config"`', "schema": {"type": "string"}}}
NO_STORE = {"Cache-Control": {"description": "`no-store`: the answer holds a secret", "schema": {"type": "string"}}}
LOCATION = {"Location": {"description": "the new device's path", "schema": {"type": "string"}}}
ETAG = {
    "ETag": {
        "description": "strong entity tag of the effective configuration",
        "required": True,
        "schema": {"type": "string"},
    }
}

ERRORS = {
    "400": _error("Malformed request: body not a JSON object, bad X-Actor, limit or device id"),
    "401": _error("Missing or wrong bearer token", **WWW_AUTH),
    "403": _error("The token belongs to another device, or the device is retired"),
    "404": _error("The device is not registered"),
    "409": _error("The device is retired: register it again first"),
    "412": _error("If-Match names another version than the current one"),
    "422": _error("The configuration breaks the schema; `key` names the offending key"),
}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: ERRORS[code] for code in codes}


def _nullable_props(doc_schema: dict[str, Any]) -> dict[str, Any]:
    """A merge patch: every key may also be null (= remove it)."""
    patch = copy.deepcopy(doc_schema)
    patch["properties"] = {name: {"anyOf": [prop, {"type": "null"}]} for name, prop in patch["properties"].items()}
    return patch


def _components() -> dict[str, Any]:
    effective = schema.json_schema(complete=True)
    effective["description"] = "The complete configuration a device applies, with its id and version."
    effective["properties"]["device_id"] = {
        "type": "string",
        "pattern": "^" + contract.DEVICE_ID_PATTERN + "$",
    }
    effective["properties"]["version"] = {
        "type": "integer",
        "minimum": 0,
        "description": "fleet defaults version + device overrides version; grows with every change",
    }
    effective["required"] = [*effective["required"], "device_id", "version"]
    document = schema.json_schema(complete=False)
    document["description"] = "A sparse configuration document: only the keys set at this level."
    stamp = {
        "updated_at": {"type": ["string", "null"], "format": "date-time"},
        "updated_by": {"type": ["string", "null"]},
    }
    history_entry = {
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
    }
    when = {"type": ["string", "null"], "format": "date-time"}
    registry_fields = {
        "device_id": {"type": "string"},
        "labels": {
            "type": "object",
            "maxProperties": 16,
            "additionalProperties": {"type": "string", "maxLength": 128},
            "description": "free-form labels of the registry row, e.g. `location`",
        },
        "created_at": {"type": "string", "format": "date-time"},
        "retired_at": {**when, "description": "null while the device is active"},
        "last_seen": {**when, "description": "time of its newest stored reading"},
        "status": {"enum": ["online", "offline", None], "description": "its retained status, as the ingest saw it"},
        "fw": {"type": ["string", "null"], "description": "firmware version it last reported"},
        "rssi": {"type": ["integer", "null"], "description": "Wi-Fi RSSI it last reported, dBm"},
    }
    registry_required = ["device_id", "labels", "created_at", "retired_at", "last_seen", "status", "fw", "rssi"]
    device = {
        "type": "object",
        "description": "A device's row in the registry.",
        "required": [*registry_required, "has_token"],
        "properties": {**registry_fields, "has_token": {"type": "boolean", "description": "it holds a config token"}},
    }
    return {
        "schemas": {
            "ConfigDocument": document,
            "ConfigPatch": {
                **_nullable_props(document),
                "description": "RFC 7396 merge patch; null removes a key.",
            },
            "EffectiveConfig": effective,
            "Overrides": {
                "type": "object",
                "required": [
                    "device_id",
                    "version",
                    "overrides",
                    "effective",
                    "etag",
                    "updated_at",
                    "updated_by",
                ],
                "properties": {
                    "device_id": {"type": "string"},
                    "version": {"type": "integer", "minimum": 0, "description": "version of the overrides"},
                    "overrides": _ref("ConfigDocument"),
                    "effective": _ref("EffectiveConfig"),
                    "etag": {"type": "string", "description": "ETag the device sees (without quotes)"},
                    **stamp,
                },
            },
            "Fleet": {
                "type": "object",
                "required": ["version", "config", "effective", "updated_at", "updated_by"],
                "properties": {
                    "version": {"type": "integer", "minimum": 0},
                    "config": _ref("ConfigDocument"),
                    "effective": {
                        **schema.json_schema(complete=True),
                        "description": "built-in defaults < fleet",
                    },
                    **stamp,
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
                                *registry_required,
                                "dropped",
                                "dropped_at",
                            ],
                            "properties": {
                                **registry_fields,
                                "dropped": {
                                    "type": "integer",
                                    "description": "readings the device reported dropping before it could send them",
                                },
                                "dropped_at": {**when, "description": "newest reading that reported any dropped"},
                                "version": {"type": "integer", "description": "effective version"},
                                "overrides_version": {"type": "integer"},
                                "retired": {"type": "boolean"},
                                "has_token": {"type": "boolean"},
                            },
                        },
                    }
                },
            },
            "Device": device,
            "RegistrationRequest": {
                "type": "object",
                "description": "Optional; without `labels` the row keeps its labels.",
                "additionalProperties": False,
                "properties": {"labels": registry_fields["labels"]},
            },
            "Registration": {
                **device,
                "description": "The registry row after the registration, with the config token when one was issued "
                "(the device had none); shown once, only its hash is stored.",
                "required": [*device["required"], "config_token"],
                "properties": {
                    **device["properties"],
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
            "History": {
                "type": "object",
                "required": ["device_id", "history"],
                "properties": {
                    "device_id": {"type": ["string", "null"], "description": "null: the fleet defaults"},
                    "history": {"type": "array", "items": history_entry},
                },
            },
            "Health": {
                "type": "object",
                "required": ["status", "database", "mqtt"],
                "properties": {
                    "status": {"enum": ["ok", "unavailable"]},
                    "database": {"enum": ["ok", "unreachable"]},
                    "mqtt": {"enum": ["connected", "disconnected", "off"]},
                },
            },
            "Error": {
                "type": "object",
                "required": ["error", "detail"],
                "properties": {
                    "error": {"type": "string", "description": "short code, e.g. not_found, invalid_config"},
                    "detail": {"type": "string", "description": "one sentence: what was wrong"},
                    "key": {"type": "string", "description": "on 422: the offending configuration key"},
                },
            },
        },
        "parameters": {
            "DeviceId": {
                "name": "device_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": "^" + contract.DEVICE_ID_PATTERN + "$"},
            },
            "IfMatch": {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "description": 'optimistic concurrency: `version` from a GET (`3` or `"3"`); 412 if it moved',
                "schema": {"type": "string"},
            },
            "XActor": {
                "name": "X-Actor",
                "in": "header",
                "required": False,
                "description": "who makes the change, recorded in the history (default `admin`)",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._@+-]{1,64}$"},
            },
            "Limit": {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
            },
        },
        "securitySchemes": {
            "deviceToken": {"type": "http", "scheme": "bearer", "description": "the device's config token"},
            "adminToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "the config server's admin token",
            },
        },
    }


def _write(summary: str, body: str | None, ok: str, codes: tuple[str, ...]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"adminToken": []}],
        "parameters": [
            {"$ref": "#/components/parameters/IfMatch"},
            {"$ref": "#/components/parameters/XActor"},
        ],
        "responses": {"200": _json(_ref(ok), "The document after the change"), **_errors(*codes)},
    }
    if body:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(body)}}}
    return op


def build() -> dict[str, Any]:
    device = [{"$ref": "#/components/parameters/DeviceId"}]
    limit = [{"$ref": "#/components/parameters/Limit"}]
    admin = [{"adminToken": []}]
    device_write = ("400", "401", "404", "412", "422")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "iots6 config server",
            "version": __version__,
            "description": "Per-device configuration for the iots6 fleet: devices fetch their effective "
            "configuration with their own token; operators change fleet defaults and per-device overrides "
            "with the admin token. Every change is validated, versioned, recorded and announced on "
            "`<base>/<device_id>/config` (retained). Operators also register and retire devices here (the "
            "device registry and each device's config token), so provisioning needs no database access.",
        },
        "paths": {
            "/v1/devices/{device_id}/config": {
                "parameters": device,
                "get": {
                    "summary": "Effective configuration of one device (for the device itself)",
                    "security": [{"deviceToken": []}],
                    "parameters": [
                        {
                            "name": "If-None-Match",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json(
                            _ref("EffectiveConfig"),
                            "The configuration",
                            {**ETAG, "Cache-Control": {"schema": {"type": "string"}}},
                        ),
                        "304": {"description": "Unchanged since the ETag in If-None-Match", "headers": ETAG},
                        **_errors("401", "403", "404"),
                    },
                },
            },
            "/v1/devices": {
                "get": {
                    "summary": "Registered devices: registry rows and configuration versions",
                    "security": admin,
                    "responses": {"200": _json(_ref("DeviceList"), "The devices"), **_errors("401")},
                }
            },
            "/v1/devices/{device_id}": {
                "parameters": device,
                "get": {
                    "summary": "A device's registry row",
                    "security": admin,
                    "responses": {"200": _json(_ref("Device"), "The registry row"), **_errors("401", "404")},
                },
                "put": {
                    "summary": "Register a device, or bring a retired one back (idempotent); issues a config token "
                    "when it has none",
                    "security": admin,
                    "parameters": [{"$ref": "#/components/parameters/XActor"}],
                    "requestBody": {"required": False, "content": {JSON: {"schema": _ref("RegistrationRequest")}}},
                    "responses": {
                        "200": _json(_ref("Registration"), "Already registered, or brought back", NO_STORE),
                        "201": _json(_ref("Registration"), "Registered", {**NO_STORE, **LOCATION}),
                        **_errors("400", "401", "422"),
                    },
                },
                "delete": {
                    "summary": "Retire a device: its config token is deleted, the row and readings stay (idempotent)",
                    "security": admin,
                    "parameters": [{"$ref": "#/components/parameters/XActor"}],
                    "responses": {"200": _json(_ref("Device"), "The retired row"), **_errors("400", "401", "404")},
                },
            },
            "/v1/devices/{device_id}/token": {
                "parameters": device,
                "post": {
                    "summary": "Issue a new config token for an active device (the old one stops working)",
                    "security": admin,
                    "parameters": [{"$ref": "#/components/parameters/XActor"}],
                    "responses": {
                        "200": _json(_ref("Token"), "The new token, shown once", NO_STORE),
                        **_errors("400", "401", "404", "409"),
                    },
                },
            },
            "/v1/devices/{device_id}/overrides": {
                "parameters": device,
                "get": {
                    "summary": "A device's overrides and effective configuration",
                    "security": admin,
                    "responses": {"200": _json(_ref("Overrides"), "The overrides"), **_errors("401", "404")},
                },
                "put": _write("Replace a device's overrides", "ConfigDocument", "Overrides", device_write),
                "patch": _write("Merge-patch a device's overrides", "ConfigPatch", "Overrides", device_write),
                "delete": _write(
                    "Remove all overrides of a device", None, "Overrides", ("400", "401", "404", "412", "422")
                ),
            },
            "/v1/devices/{device_id}/history": {
                "parameters": device,
                "get": {
                    "summary": "Changes to a device's overrides, newest first",
                    "security": admin,
                    "parameters": limit,
                    "responses": {
                        "200": _json(_ref("History"), "The history"),
                        **_errors("400", "401", "404"),
                    },
                },
            },
            "/v1/fleet/config": {
                "get": {
                    "summary": "The fleet-wide defaults",
                    "security": admin,
                    "responses": {"200": _json(_ref("Fleet"), "The fleet defaults"), **_errors("401")},
                },
                "put": _write("Replace the fleet defaults", "ConfigDocument", "Fleet", ("400", "401", "412", "422")),
                "patch": _write("Merge-patch the fleet defaults", "ConfigPatch", "Fleet", ("400", "401", "412", "422")),
            },
            "/v1/fleet/history": {
                "get": {
                    "summary": "Changes to the fleet defaults, newest first",
                    "security": admin,
                    "parameters": limit,
                    "responses": {"200": _json(_ref("History"), "The history"), **_errors("400", "401")},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "200 when the database answers, else 503",
                    "security": [],
                    "responses": {
                        "200": _json(_ref("Health"), "Healthy"),
                        "503": _json(_ref("Health"), "Database unreachable"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
                }
            },
        },
        "components": _components(),
    }
