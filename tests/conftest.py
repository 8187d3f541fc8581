"""Shared test set-up: hypothesis profiles ('dev' quick, 'ci' deterministic) and small helpers."""

from __future__ import annotations

import itertools
import os
import signal
import threading

import pytest
import torch
from hypothesis import HealthCheck, settings

# Without a GPU the Triton kernels (tests/kernels) run in Triton's interpreter. Triton reads this once, when it is
# first imported, and a test module may import it while being collected (torch.utils.flop_counter does): set here.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

settings.register_profile("ci", max_examples=30, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=15, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

_CACHE_FOLDERS = itertools.count()


@pytest.fixture(scope="session")
def _compile_cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("compile-cache")


@pytest.fixture(autouse=True)
def _compile_cache(_compile_cache_root, monkeypatch):
    """Each test gets an empty compile cache of its own (archdsl.compilecache), never the user's ~/.cache."""
    monkeypatch.delenv("ARCHDSL_NO_CACHE", raising=False)
    monkeypatch.setenv("ARCHDSL_CACHE_DIR", str(_compile_cache_root / str(next(_CACHE_FOLDERS))))


HANG_LIMIT = 180    # seconds: a liveness guard against hangs, far above any test's run time (not a speed claim)


@pytest.fixture
def hang_guard():
    """Fail a test that runs longer than HANG_LIMIT instead of stalling the suite (tests of refusals that must
    not hang; speed itself is measured in benchmarks/, never asserted)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"test ran longer than {HANG_LIMIT} s: it hangs")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(HANG_LIMIT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
