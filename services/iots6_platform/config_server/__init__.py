"""The config server: per-device configuration over HTTP, authenticated, versioned, announced over MQTT.

``create_app(config=None)`` builds the Flask app (``config`` keys override ``CONFIG_SERVER_*`` env vars, see
:mod:`iots6_platform.config_server.config`); ``python -m iots6_platform.config_server`` serves it under gunicorn.
Documented in ``docs/config-server.md``; the API in ``docs/openapi.json``.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from flask import Flask, jsonify, request
from psycopg_pool import ConnectionPool, PoolTimeout
from werkzeug.exceptions import HTTPException

from iots6_platform.config_server import config as server_config
from iots6_platform.config_server.notify import Notifier
from iots6_platform.config_server.runtime import EXTENSION, REALM, State
from iots6_platform.core.devconfig.schema import ConfigInvalid

log = logging.getLogger("iots6.config_server")


def _error_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("-", "_")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app. Raises :class:`iots6_platform.config_server.config.ConfigError` on bad configuration."""
    # Imported here: __main__ must set PROMETHEUS_MULTIPROC_DIR before prometheus_client loads.
    from iots6_platform.config_server.metrics import Metrics

    settings = server_config.load(config)
    app = Flask(__name__)
    app.json.sort_keys = True
    metrics = Metrics()
    kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": 5}
    if settings.database_password is not None:
        kwargs["password"] = settings.database_password
    pool = ConnectionPool(
        settings.database_url,
        kwargs=kwargs,
        min_size=1,
        max_size=4,
        timeout=5,
        open=False,
        name="config-server",
        check=ConnectionPool.check_connection,
    )
    pool.open(wait=False)
    notifier = None
    if settings.mqtt_host:
        notifier = Notifier(
            settings.mqtt_host,
            settings.mqtt_port,
            settings.mqtt_username,
            settings.mqtt_password,
            settings.topic_base,
            metrics,
            settings.mqtt_protocol,
        )
        notifier.start()
    else:
        log.warning("CONFIG_SERVER_MQTT_HOST is not set: change notices are off; devices still poll")
    app.extensions[EXTENSION] = State(settings, pool, metrics, notifier)

    from iots6_platform.config_server import routes

    routes.register(app)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response = jsonify({"error": _error_code(exc), "detail": exc.description or exc.name})
        response.status_code = exc.code or 500
        if exc.code == 401:
            response.headers["WWW-Authenticate"] = REALM
        for name, value in exc.get_headers() if exc.response is None else []:
            if name.lower() == "allow":
                response.headers[name] = value
        return response

    @app.errorhandler(ConfigInvalid)
    def invalid_config(exc: ConfigInvalid):
        response = jsonify({"error": "invalid_config", "detail": str(exc), "key": exc.key})
        response.status_code = 422
        return response

    @app.errorhandler(PoolTimeout)
    @app.errorhandler(psycopg.OperationalError)
    def database_down(exc: Exception):
        log.error("database unavailable: %s", exc.__class__.__name__)
        response = jsonify({"error": "unavailable", "detail": "the database is not reachable; try again later"})
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response

    @app.after_request
    def count(response):
        metrics.requests.labels(request.endpoint or "unmatched", str(response.status_code)).inc()
        return response

    return app


def close_app(app: Flask) -> None:
    """Stop the app's MQTT client and close its database pool (tests, gunicorn worker exit)."""
    state = app.extensions.pop(EXTENSION, None)
    if state is not None:
        state.close()
