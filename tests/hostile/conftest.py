"""Fixtures of the hostile suite (helpers live in _hostile.py): the spec folder, and the hang guard on every test."""

from __future__ import annotations

import pytest

from tests.hostile._hostile import here  # noqa: F401  (a fixture)


@pytest.fixture(autouse=True)
def hard_timeout(hang_guard):
    """Every hostile test runs under the suite's hang guard (risky cases also run in subprocesses with limits)."""
    yield
