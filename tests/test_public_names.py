"""Lazily loaded public names stay what they are after their modules are imported (no submodule shadows one)."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

PACKAGES = ("archdsl", "archdsl.analysis", "archdsl.symmetry")


@pytest.mark.parametrize("package", PACKAGES)
def test_no_public_name_is_shadowed_by_a_submodule(package: str) -> None:
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{package}.{info.name}")     # what any caller may do first
    for name in pkg._LAZY:
        value = getattr(pkg, name)
        assert not isinstance(value, types.ModuleType), f"{package}.{name} is the module, not the public name"


def test_simplify_bind_and_derive_are_functions() -> None:
    import archdsl
    import archdsl.analysis
    import archdsl.symmetry

    assert callable(archdsl.simplify) and archdsl.simplify.__module__ == "archdsl.simplifying"
    assert callable(archdsl.analysis.bind) and callable(archdsl.symmetry.derive)
