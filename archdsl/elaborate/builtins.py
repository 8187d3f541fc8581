"""Pure built-in functions a spec may call at elaboration time (no host code, bounded work)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from archdsl.errors import OpError
from archdsl.ir.dims import Ratio, SymDim

MAX_REPEAT = 10_000


class BuiltinLimit(OpError):
    """A built-in asked for more work than the limits allow (reported as a LimitError)."""


def _range(*args: int) -> list[int]:
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        raise OpError("range takes 1 to 3 integers", "range(n), range(start, stop) or range(start, stop, step)")
    r = range(*args)
    if len(r) > MAX_REPEAT:
        raise BuiltinLimit(f"range of {len(r):,} items is more than the limit of {MAX_REPEAT:,}",
                      hint="repeat counts this large are almost certainly a mistake")
    return list(r)


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``v`` to a multiple of ``divisor`` without going below ``round_limit`` of it (timm's rule;
    MobileNet's 90% by default)."""
    if divisor <= 0:
        raise OpError("make_divisible: divisor must be positive", "make_divisible(v, divisor=8)")
    if isinstance(round_limit, bool) or not isinstance(round_limit, (int, float)) or not 0 < round_limit <= 1:
        raise OpError(f"make_divisible: round_limit must be in (0, 1], got {round_limit!r}", "timm uses 0.9 (the default)")
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def _round(x: float, ndigits: int | None = None) -> float | int:
    return round(x) if ndigits is None else round(x, ndigits)


def _len(x: Any) -> int:
    if not isinstance(x, (list, tuple, str)):
        raise OpError(f"len needs a list, tuple or string, got {type(x).__name__}", "len(items) or len(layers)")
    return len(x)


def _int(x: Any) -> int:
    if not isinstance(x, (int, float)):
        raise OpError(f"int needs a number, got {type(x).__name__}", "int(2.0), int(c / 2)")
    return int(x)


def _float(x: Any) -> float:
    if not isinstance(x, (int, float)):
        raise OpError(f"float needs a number, got {type(x).__name__}", "float(c), float(2)")
    return float(x)


def _zip(*lists: Any) -> list[tuple]:
    return list(zip(*lists, strict=False))


def _enumerate(items: Any, start: int = 0) -> list[tuple]:
    return list(enumerate(items, start))


def _sum(items: Any, start: Any = 0) -> Any:
    total = start
    for x in items:
        total = total + x
    return total


BUILTINS: dict[str, Callable[..., Any]] = {
    "range": _range,
    "len": _len,
    "min": min,
    "max": max,
    "abs": abs,
    "int": _int,
    "float": _float,
    "round": _round,
    "ceil": lambda x: x.ceil() if isinstance(x, Ratio) else x if isinstance(x, SymDim) else math.ceil(x),
    "floor": lambda x: x.floor() if isinstance(x, Ratio) else x if isinstance(x, SymDim) else math.floor(x),
    "sqrt": math.sqrt,
    "make_divisible": make_divisible,
    "zip": _zip,
    "enumerate": _enumerate,
    "total": _sum,
}
