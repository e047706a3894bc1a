"""The config server's resources: one blueprint per module, each with the schemas of what it answers (``SCHEMAS``).

A new resource is a new module here with ``bp`` and ``SCHEMAS``, added to :data:`RESOURCES`; a new route on an
existing resource is a view in that module whose docstring documents its operation (docs/config-server.md, "How to
add a route"). :func:`create_app <iots6_platform.config_server.create_app>` serves them and
:func:`openapi.build <iots6_platform.config_server.openapi.build>` documents them, both from this list.
"""

from __future__ import annotations

from flask import Flask

from iots6_platform.config_server import device_config, devices, fleet, ops, registry

RESOURCES = (device_config, devices, registry, fleet, ops)


def register(app: Flask) -> None:
    for resource in RESOURCES:
        app.register_blueprint(resource.bp)
