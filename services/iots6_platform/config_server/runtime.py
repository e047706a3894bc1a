"""Per-app runtime state (config, database pool, metrics, MQTT notifier) and the helpers views use."""

from __future__ import annotations

import hashlib
import hmac
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import abort, current_app, request
from psycopg_pool import ConnectionPool

from iots6_platform.config_server.config import ServerConfig
from iots6_platform.config_server.notify import Notifier
from iots6_platform.core.contract import MAX_JSON_DEPTH, json_depth

if TYPE_CHECKING:  # prometheus_client must load only after __main__ has configured it
    from iots6_platform.config_server.metrics import Metrics

EXTENSION = "iots6_config"
ACTOR_RE = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
REALM = 'Bearer realm="iots6-config"'


@dataclass
class State:
    config: ServerConfig
    pool: ConnectionPool
    metrics: Metrics
    notifier: Notifier | None

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close()
        self.pool.close()


def state() -> State:
    return current_app.extensions[EXTENSION]


@contextmanager
def db():
    with state().pool.connection() as conn:
        yield conn


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_admin() -> None:
    """401 unless the request carries the admin bearer token (compared in constant time)."""
    token = bearer_token()
    metrics = state().metrics
    if token is None:
        metrics.auth_failures.labels("missing").inc()
        abort(401, "an admin bearer token is required (Authorization: Bearer <token>)")
    expected = hashlib.sha256(state().config.admin_token.encode()).digest()
    if not hmac.compare_digest(hashlib.sha256(token.encode()).digest(), expected):
        metrics.auth_failures.labels("invalid").inc()
        abort(401, "the bearer token is not the admin token")


def actor() -> str:
    value = request.headers.get("X-Actor", "admin").strip() or "admin"
    if not ACTOR_RE.fullmatch(value):
        abort(400, "X-Actor must be 1-64 characters from A-Z, a-z, 0-9 and ._@+-")
    return value


def expected_version() -> int | None:
    """The version named by ``If-Match`` (``3``, ``"3"`` or ``W/"3"``); None when absent or ``*``."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    text = raw.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 9:
        abort(412, f"If-Match {raw!r} names no version; send the `version` from a GET")
    return int(text)


def json_body() -> dict:
    """The request body as a JSON object, nested at most MAX_JSON_DEPTH levels (a configuration needs 2)."""
    try:
        body = request.get_json(force=True, silent=True)
    except RecursionError:  # deeper than the parser can go: the depth rule below, before it could be checked
        body = None
        too_deep = True
    else:
        too_deep = json_depth(body) > MAX_JSON_DEPTH
    if too_deep:
        abort(400, f"the request body nests JSON deeper than {MAX_JSON_DEPTH} levels; a configuration needs 2")
    if not isinstance(body, dict):
        abort(400, "the request body must be a JSON object")
    return body


def history_limit() -> int:
    raw = request.args.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        abort(400, "limit must be an integer from 1 to 500")
    return int(raw)
