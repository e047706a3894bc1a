"""Files iotctl ships inside its wheel besides its modules, found the same way installed or in a checkout.

The wheel carries the repository's ``firmware/`` as ``iotctl/_firmware``, ``infra/grafana/`` as ``iotctl/_grafana``
(and ``templates/`` as ``iotctl/_templates``, found by :mod:`iotctl.render`): pyproject.toml, hatch
``force-include``.  It does not carry ``services/``, so only a checkout can build the service images
(``iotctl.stack.docker``; from a wheel the Docker stack uses the prebuilt ``iots6/<service>:<version>`` images).
An editable install (``pip install -e .``, what ``make install`` does) imports iotctl from the checkout, where there
is no ``_firmware`` folder and the firmware is the repository's own ``firmware/``, next to the package.
"""

from __future__ import annotations

from pathlib import Path

from iotctl.errors import MissingDependency

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGED_FIRMWARE = PACKAGE_DIR / "_firmware"
CHECKOUT_FIRMWARE = PACKAGE_DIR.parent / "firmware"


def _is_firmware(folder: Path) -> bool:
    return (folder / "main.py").is_file() and (folder / "lib" / "iots6" / "app.py").is_file()


def firmware_dir() -> Path:
    """The firmware's folder (``main.py``, ``lib/``, ``manifest.json``): the wheel's copy, else the checkout's."""
    for folder in (PACKAGED_FIRMWARE, CHECKOUT_FIRMWARE):
        if _is_firmware(folder):
            return folder
    raise MissingDependency(
        f"The firmware is neither in the installed package (`{PACKAGED_FIRMWARE}`) nor in a checkout "
        f"(`{CHECKOUT_FIRMWARE}`); reinstall iotctl (pip install --force-reinstall iotctl)."
    )


def source_checkout() -> Path | None:
    """The repository root when iotctl runs from a source checkout (it holds the service images' build context)."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "services" / "Dockerfile").is_file():
        return root
    return None


def grafana_dir() -> Path:
    """Grafana's provisioning and dashboards: ``infra/grafana`` of the checkout, else the wheel's copy."""
    checkout = PACKAGE_DIR.parent / "infra" / "grafana"
    return checkout if checkout.is_dir() else PACKAGE_DIR / "_grafana"
