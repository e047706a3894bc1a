"""Files iotctl ships inside its wheel besides its modules, found the same way installed or in a checkout.

The wheel carries the repository's ``firmware/`` as ``iotctl/_firmware`` (and ``templates/`` as
``iotctl/_templates``, found by :mod:`iotctl.render`): pyproject.toml, hatch ``force-include``.  An editable install
(``pip install -e .``, what ``make install`` does) imports iotctl from the checkout, where there is no
``_firmware`` folder and the firmware is the repository's own ``firmware/``, next to the package.
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
