"""Torch lowering rules, one module per op family; ``load`` imports every module of this package once.

The modules are found by listing the package, so the op families are listed in one place only
(``archdsl.ops.registry.FAMILIES``); a test checks that every op has a lowering here.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil


@functools.cache      # listing the package costs ~1 ms; rule_for calls this for every node it lowers
def load() -> None:
    """Import every rule module (each registers its rules in ``registry.RULES``)."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
