"""``import iots6`` in the simulator: the firmware's application package, from the firmware iotctl ships.

The firmware's modules import each other as ``iots6.<module>`` (on the board ``/lib`` is on the path), so the
simulator imports them under that same top-level name.  Instead of putting the firmware's ``lib`` folder on
``sys.path`` (every name in it would become importable, for the whole process), one finder on ``sys.meta_path``
answers for the single name ``iots6``; its submodules are then found through the package's own ``__path__``, as
any package's are.  That is also why the platform's package is called ``iots6_platform``, not ``iots6``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from pathlib import Path

from iotctl.packaged import firmware_dir

PACKAGE = "iots6"
_lock = threading.Lock()


class FirmwareFinder(importlib.abc.MetaPathFinder):
    """Finds the top-level package ``iots6`` in ``lib`` and nothing else."""

    def __init__(self, lib: Path) -> None:
        self.lib = lib

    def find_spec(self, fullname, path=None, target=None):
        if fullname != PACKAGE:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [str(self.lib)])


def firmware_path() -> Path:
    """Make ``import iots6`` load the firmware's package (the finder is installed once per process); returns the
    firmware's ``lib`` folder.  MissingDependency when iotctl was installed without its firmware."""
    lib = firmware_dir() / "lib"
    with _lock:
        if not any(isinstance(f, FirmwareFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, FirmwareFinder(lib))
    return lib
