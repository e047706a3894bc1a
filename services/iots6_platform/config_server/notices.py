"""After a committed change: publish the retained notices (never failing the request)."""

from __future__ import annotations

import logging

from iots6_platform.config_server import store
from iots6_platform.config_server.runtime import db, state

log = logging.getLogger("iots6.config_server.notices")


def _publish(found: list[store.Effective]) -> None:
    notifier = state().notifier
    if notifier is None:
        return
    for item in found:
        notifier.notify(item.device_id, item.version, item.etag)


def device_changed(device_id: str) -> None:
    try:
        with db() as conn:
            found = store.device_effective(conn, device_id)
        _publish([found] if found else [])
    except Exception:  # the write is committed; devices will poll
        log.exception("notice for %s not published", device_id)
        state().metrics.notices_failed.inc()


def fleet_changed() -> None:
    try:
        with db() as conn:
            found = store.active_effective(conn)
        _publish(found)
    except Exception:  # the write is committed; devices will poll
        log.exception("fleet notices not published")
        state().metrics.notices_failed.inc()
