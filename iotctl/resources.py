"""Files iotctl ships besides its code, found in a source checkout or in the installed wheel.

A checkout has ``templates/``, ``infra/grafana/`` and ``services/`` next to the ``iotctl`` package; the wheel
carries copies of the first two under ``iotctl/_templates`` and ``iotctl/_grafana`` (pyproject.toml,
``force-include``) but not the services' sources, so only a checkout can build the service images
(``iotctl.stack.docker``; from a wheel the Docker stack uses the prebuilt ``iots6/<service>:<version>`` images).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def source_checkout() -> Path | None:
    """The repository root when iotctl runs from a source checkout (it holds the images' build context)."""
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "services" / "Dockerfile").is_file():
        return _CHECKOUT
    return None


def grafana_dir() -> Path:
    """Grafana's provisioning and dashboards (``infra/grafana`` of the checkout, else the wheel's copy)."""
    checkout = _CHECKOUT / "infra" / "grafana"
    return checkout if checkout.is_dir() else _PACKAGE / "_grafana"
