"""Torch lowering rules, one module per op family; ``load`` imports each of them once."""

from __future__ import annotations

import importlib

MODULES = ("conv", "linear", "norm", "activation", "pool", "tensor", "shape", "attention", "embed", "resample",
           "regularize", "mixing", "linear_attention")


def load() -> None:
    """Import every rule module (each registers its rules in ``registry.RULES``)."""
    for name in MODULES:
        importlib.import_module(f"archdsl.backends.torch.rules.{name}")
