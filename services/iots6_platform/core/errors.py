"""Typed errors of the platform's domain: a one-sentence, user-facing message naming the thing and the fix.

They carry no exit codes: a program maps them in one place (``iotctl.errors.exit_code_for`` for the CLI; the
services answer HTTP status codes). ``iotctl`` raises the same classes from its own library layer.
"""

from __future__ import annotations


class Iots6Error(Exception):
    """Base class: a one-sentence, user-facing message."""


class OperationFailed(Iots6Error):
    """The operation was attempted and failed."""


class MissingDependency(Iots6Error):
    """A required program or package is missing."""


class Unreachable(Iots6Error):
    """A service could not be reached (down, wrong host or port)."""


class AuthRefused(Iots6Error):
    """Credentials were refused."""


class InvalidInput(Iots6Error):
    """A bad file, value or identifier."""


class NotFound(Iots6Error):
    """Something named does not exist."""
