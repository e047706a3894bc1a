"""Open a database connection with errors mapped to one-sentence messages (naming the environment, if any)."""

from __future__ import annotations

import psycopg

from iotctl.endpoints import DbEndpoint
from iotctl.errors import AuthRefused, Unreachable


def connect(endpoint: DbEndpoint, autocommit: bool = True, timeout: int = 5) -> psycopg.Connection:
    kwargs = {"autocommit": autocommit, "connect_timeout": timeout}
    if endpoint.password is not None:
        kwargs["password"] = endpoint.password
    where = f"`{endpoint.url}`" + (f" of environment `{endpoint.env}`" if endpoint.env else "")
    try:
        return psycopg.connect(endpoint.url, **kwargs)
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "password authentication failed" in text or "no password supplied" in text:
            fix = (
                f"its `postgres-admin-password` is wrong or expired; re-register environment `{endpoint.env}`"
                if endpoint.env
                else "check IOTCTL_DATABASE_PASSWORD_FILE"
            )
            raise AuthRefused(f"Database {where} refused the credentials; {fix}.") from None
        if "does not exist" in text:
            raise Unreachable(f"Database {where} does not exist; run `iotctl stack up` or create it.") from None
        fix = (
            f"check that it runs and that `iotctl env show {endpoint.env}` has the right URL"
            if endpoint.env
            else "start it with `iotctl stack up` or fix IOTCTL_DATABASE_URL"
        )
        raise Unreachable(f"Database {where} is not reachable; {fix}.") from None
