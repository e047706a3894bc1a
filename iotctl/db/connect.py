"""Open a database connection with errors mapped to one-sentence messages."""

from __future__ import annotations

import psycopg

from iotctl.endpoints import DbEndpoint
from iotctl.errors import AuthRefused, Unreachable


def connect(endpoint: DbEndpoint, autocommit: bool = True, timeout: int = 5) -> psycopg.Connection:
    kwargs = {"autocommit": autocommit, "connect_timeout": timeout}
    if endpoint.password is not None:
        kwargs["password"] = endpoint.password
    try:
        return psycopg.connect(endpoint.url, **kwargs)
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "password authentication failed" in text or "no password supplied" in text:
            raise AuthRefused(
                f"Database `{endpoint.url}` refused the credentials; check IOTCTL_DATABASE_PASSWORD_FILE."
            ) from None
        if "does not exist" in text:
            raise Unreachable(
                f"Database `{endpoint.url}` does not exist; run `iotctl stack up` or create it."
            ) from None
        raise Unreachable(
            f"Database `{endpoint.url}` is not reachable; start it with `iotctl stack up` or fix IOTCTL_DATABASE_URL."
        ) from None
