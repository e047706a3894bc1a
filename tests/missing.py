"""What a test does when a tool it needs is missing: skip on a developer's machine, FAIL in CI.

A green CI run must never mean "firmware untested" or "chart never rendered". `.ci/run` exports CI=true; any
non-empty CI other than "false"/"0" counts (as most CI systems set it).
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(message: str) -> None:
    """Skip with ``message`` locally; fail with it in CI. Never returns."""
    if in_ci():
        pytest.fail(f"{message} (CI: a missing tool fails the run instead of skipping)", pytrace=False)
    pytest.skip(message)
