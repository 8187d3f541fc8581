"""``archdsl.simplify`` is the function, whatever was imported before (its module is archdsl.simplifying)."""

from __future__ import annotations

import importlib


def test_simplify_stays_the_function_after_its_module_is_imported() -> None:
    importlib.import_module("archdsl.simplifying")
    importlib.import_module("archdsl.backends.torch.runtime")
    import archdsl

    assert callable(archdsl.simplify) and archdsl.simplify.__module__ == "archdsl.simplifying"
