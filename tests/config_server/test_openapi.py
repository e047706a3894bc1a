"""The OpenAPI document: the committed copy equals the served one, and schemathesis, driving the app
in-process with real credentials, finds no server error and no response that breaks the document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from apispec_webframeworks.flask import FlaskPlugin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from iots6_platform.config_server import openapi

from .conftest import ADMIN_TOKEN, register

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
DEVICE_CONFIG = "/v1/devices/{device_id}/config"


def test_committed_document_equals_served_one(client):
    served = client.get("/openapi.json")
    assert served.status_code == 200
    assert json.loads(DOCS.read_text()) == served.json, (
        "docs/openapi.json is stale; run: python -m iots6_platform.config_server --openapi > docs/openapi.json"
    )
    assert served.json["openapi"].startswith("3.1")


def _exercise(operation, headers: dict[str, str], device) -> None:
    """Up to 20 positive and negative examples of one operation; a failure raises with a curl reproduction."""

    @given(case=st.one_of(operation.as_strategy(mode) for mode in GenerationMode))
    @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(headers=headers, checks=CHECKS)
        if "device_id" in (case.path_parameters or {}):
            # Again on a registered device, so 200/304/412/422 are exercised, not only 404/403.
            case.path_parameters["device_id"] = device.device_id
            case.call_and_validate(headers=headers, checks=CHECKS)

    check()


@pytest.mark.slow
def test_api_conforms_to_its_document(app, database):
    """Every operation, as the right caller (device or admin token), in-process through the WSGI app.

    Driven with hypothesis directly: schemathesis' pytest plugin (``from_fixture``) does not support pytest 9.
    """
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    device = register(database)
    operations = [result.ok() for result in schema.get_all_operations()]
    served = {
        f"{method} {FlaskPlugin.flaskpath2openapi(rule.rule)}"
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - openapi.IMPLICIT_METHODS
    }
    # Every operation the app serves, but the document's own URL (schemathesis leaves out where it loaded it from).
    assert {operation.label for operation in operations} == served - {"GET /openapi.json"}
    for operation in operations:
        token = device.token if operation.path == DEVICE_CONFIG else ADMIN_TOKEN
        _exercise(operation, {"Authorization": f"Bearer {token}"}, device)
