"""Typed errors of flashing; each subclasses an ``iotctl.errors`` class, so exit codes stay mapped in one place."""

from __future__ import annotations

from iotctl.errors import InvalidInput, MissingDependency, NotFound, OperationFailed, Unreachable


class NoBoard(NotFound):
    """Nothing at the port, or no board attached."""


class SeveralBoards(InvalidInput):
    """More than one board attached and no --port to choose."""


class PortBusy(Unreachable):
    """Another program holds the serial port."""


class NotMicroPython(InvalidInput):
    """The port answers, but not with a MicroPython raw REPL."""


class MicroPythonTooOld(MissingDependency):
    """The board runs a MicroPython older than the firmware needs."""


class OutOfFlash(OperationFailed):
    """The board's filesystem has no room for the files to copy."""


class WifiMissing(InvalidInput):
    """Wi-Fi credentials were neither given nor kept from the board."""


class NotOnline(Unreachable):
    """The board did not report that it is online in time."""
