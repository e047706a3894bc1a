"""How the OpenAPI document is generated from the routes: every resource's routes and schemas, the key table's
schemas, and a clear refusal of a route that is not documented (so a new route cannot be served undocumented)."""

from __future__ import annotations

import pytest
from apispec.exceptions import APISpecError
from flask import Blueprint, Flask

from iots6_platform.config_server import openapi, routes
from iots6_platform.core.devconfig import schema


def _app_with(extra: Blueprint) -> Flask:
    app = Flask(__name__)
    routes.register(app)
    app.register_blueprint(extra)
    return app


def test_every_route_of_every_resource_is_documented():
    app = Flask(__name__)
    routes.register(app)
    document = openapi.build(app)
    served = {
        (rule.rule.replace("<", "{").replace(">", "}"), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - openapi.IMPLICIT_METHODS
    }
    documented = {
        (path, method) for path, item in document["paths"].items() for method in item if method != "parameters"
    }
    assert documented == served
    for item in document["paths"].values():
        for method, operation in item.items():
            if method != "parameters":
                assert operation["summary"] and operation["responses"], operation


def test_configuration_schemas_come_from_the_key_table():
    schemas = openapi.build()["components"]["schemas"]
    assert schemas["ConfigDocument"]["properties"] == schema.json_schema()["properties"]
    effective = schemas["EffectiveConfig"]
    assert set(effective["required"]) == set(schema.KEYS) | {"device_id", "version"}
    assert set(schemas["ConfigPatch"]["properties"]) == set(schema.KEYS)


def test_a_route_without_a_documented_operation_is_refused():
    extra = Blueprint("extra", __name__)

    @extra.post("/v1/devices/<device_id>/rotate")
    def rotate(device_id: str):
        """Rotate a token (its docstring has no operation)."""

    with pytest.raises(APISpecError, match=r"`extra.rotate` serves POST .*documents no `post:` operation"):
        openapi.build(_app_with(extra))


def test_a_path_argument_without_a_parameter_is_refused():
    extra = Blueprint("extra", __name__)

    @extra.get("/v1/sites/<site>")
    def site(site: str):
        """A site
        ---
        get:
          responses:
            200: {description: The site}
        """

    with pytest.raises(APISpecError, match=r"path argument `site` with no parameter component"):
        openapi.build(_app_with(extra))


def test_a_documented_route_needs_no_change_outside_its_module():
    extra = Blueprint("extra", __name__)

    @extra.post("/v1/devices/<device_id>/retire")
    def retire(device_id: str):
        """Retire a device
        ---
        post:
          parameters: [XActor]
          responses:
            200: {description: Retired, content: {application/json: {schema: DeviceList}}}
            401: Unauthorized
            404: NotFound
        """

    item = openapi.build(_app_with(extra))["paths"]["/v1/devices/{device_id}/retire"]
    assert item["parameters"] == [{"$ref": "#/components/parameters/DeviceId"}]
    assert item["post"]["summary"] == "Retire a device"
    assert item["post"]["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}
