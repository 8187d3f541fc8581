"""Torch lowering rules, one module per op family; ``load`` imports every module of this package once.

The modules are found by listing the package, so the op families are listed in one place only
(``archdsl.ops.registry.FAMILY_NAMES``); a test checks that every op has a lowering here. ``load_family``
imports the module named like an op family (``conv``) alone: a build imports the rules of the ops it meets.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil


@functools.cache
def load_family(name: str) -> None:
    """Import the rule module named ``name`` when the package has one (the rules of op family ``name``)."""
    if any(info.name == name for info in _modules()):
        importlib.import_module(f"{__name__}.{name}")


@functools.cache
def _modules() -> tuple[pkgutil.ModuleInfo, ...]:
    return tuple(pkgutil.iter_modules(__path__))


@functools.cache      # listing the package costs ~1 ms; rule_for calls this for every node it lowers
def load() -> None:
    """Import every rule module (each registers its rules in ``registry.RULES``)."""
    for info in _modules():
        importlib.import_module(f"{__name__}.{info.name}")
