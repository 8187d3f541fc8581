"""Shared test set-up: hypothesis profiles ('dev' quick, 'ci' deterministic) and small helpers."""

from __future__ import annotations

import os

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
