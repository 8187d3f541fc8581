"""Helpers for writing lowering rules as source text."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from archdsl.errors import Diagnostic, UsageError

# While a forward is generated: symbol -> the local bound from the inputs, and the symbols rules used.
SYMBOL_LOCALS: ContextVar[tuple[dict[str, str], set[str]] | None] = ContextVar("symbol_locals", default=None)


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


def bound_symbol(name: str) -> str:
    """The forward local holding symbol ``name`` (bound from the inputs' shapes); records that it is used."""
    ctx = SYMBOL_LOCALS.get()
    if ctx is None or name not in ctx[0]:
        raise UsageError(Diagnostic(f"the size '{name}' cannot be computed from the model's inputs at run time",
                                    hint="declare it in an input type ([N, 3, H, W] or a pattern such as "
                                         "[N, 3, 32*P, 32*Q])"))
    ctx[1].add(name)
    return ctx[0][name]
