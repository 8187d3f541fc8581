"""Fixtures of the hostile suite (helpers live in _hostile.py): the spec folder, and a hard timeout per test."""

from __future__ import annotations

import signal
import threading

import pytest
from _hostile import here  # noqa: F401  (a fixture)

HARD_TIMEOUT = 180    # seconds; a hang in a hostile test fails it instead of stalling the suite


@pytest.fixture(autouse=True)
def hard_timeout():
    """Fail a test that runs longer than HARD_TIMEOUT (risky cases also run in subprocesses with their own limits)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"hostile test ran longer than {HARD_TIMEOUT} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(HARD_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
