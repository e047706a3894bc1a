"""The typed errors iotctl's library layer raises, and the one place they become exit codes.

The classes are the platform's (``iots6_platform.core.errors``), so an error raised by the shared domain (a bad
config key, an unknown token) and one raised by iotctl itself are handled alike. Every message is one sentence that
names the thing (in backticks) and says how to fix it. The CLI catches :class:`IotctlError` in one function
(``iotctl.cli.main.run``) and exits with :func:`exit_code_for`.

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

from iots6_platform.core.errors import (
    AuthRefused,
    InvalidInput,
    Iots6Error,
    MissingDependency,
    NotFound,
    OperationFailed,
    Unreachable,
)

#: What the CLI catches: every error of the platform's domain and of iotctl's library layer.
IotctlError = Iots6Error

__all__ = [
    "AuthRefused",
    "InvalidInput",
    "IotctlError",
    "MissingDependency",
    "NotFound",
    "OperationFailed",
    "Unreachable",
    "exit_code_for",
]

_EXIT_CODES: tuple[tuple[type[Iots6Error], int], ...] = (
    (MissingDependency, 3),
    (Unreachable, 4),
    (AuthRefused, 5),
    (InvalidInput, 6),
    (NotFound, 7),
    (OperationFailed, 1),
)


def exit_code_for(exc: BaseException) -> int:
    """The single mapping from an exception to a process exit code (1 for anything unmapped)."""
    for cls, code in _EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1
