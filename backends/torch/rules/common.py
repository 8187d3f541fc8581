"""Helpers for writing lowering rules as source text."""

from __future__ import annotations

from typing import Any


def ctor(cls: str, *args: Any, **kwargs: Any) -> str:
    """Source of a constructor call: ``ctor("nn.Conv2d", 3, 64, bias=False)``."""
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{cls}({', '.join(parts)})"


def fn(name: str, *args: str, **kwargs: Any) -> str:
    """Source of a function call whose positional args are already source text."""
    parts = list(args) + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def spec_module(op, ins) -> str:
    """Constructor source of a module holding exactly the parameters ``op`` declares (shape, initialiser, dtype
    and fan-in from its ParamSpecs: nothing restated)."""
    specs = {name: (tuple(int(d) for d in spec.shape), spec.init, spec.dtype, spec.fan_in)
             for name, spec in op.params(ins).items()}
    return f"rt.ParamHolder({specs!r})"
