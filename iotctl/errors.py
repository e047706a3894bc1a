"""Typed errors raised by the library layer, and the one place they become exit codes.

Every message is one sentence that names the thing (in backticks) and says how to fix it.
The CLI catches :class:`IotctlError` in one function (``iotctl.cli.main.run``) and exits with ``exit_code``.

Exit codes (documented in docs/cli.md):

==  =====================================================================
0   success
1   the operation failed (:class:`OperationFailed` and anything unmapped)
2   usage error (Typer's own)
3   a required program or package is missing (:class:`MissingDependency`)
4   a service could not be reached: stack down, wrong host/port (:class:`Unreachable`)
5   credentials refused (:class:`AuthRefused`)
6   invalid input: bad file, bad value, bad device id (:class:`InvalidInput`)
7   something named does not exist (:class:`NotFound`)
==  =====================================================================
"""

from __future__ import annotations


class IotctlError(Exception):
    """Base class: a one-sentence, user-facing message."""

    exit_code = 1


class OperationFailed(IotctlError):
    exit_code = 1


class MissingDependency(IotctlError):
    exit_code = 3


class Unreachable(IotctlError):
    exit_code = 4


class AuthRefused(IotctlError):
    exit_code = 5


class InvalidInput(IotctlError):
    exit_code = 6


class NotFound(IotctlError):
    exit_code = 7


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "the operation failed",
    2: "usage error",
    3: "a required program or package is missing",
    4: "a service could not be reached",
    5: "credentials refused",
    6: "invalid input",
    7: "not found",
}


def exit_code_for(exc: BaseException) -> int:
    """The single mapping from an exception to a process exit code."""
    if isinstance(exc, IotctlError):
        return exc.exit_code
    return 1
