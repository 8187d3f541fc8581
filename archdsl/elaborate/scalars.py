"""The pure scalar evaluator: operators on ints, floats, strings, lists and symbolic dims, as a table.

Nothing here knows about scopes, tensors or spans: each function returns a value or raises
:class:`ScalarError`, which the expression evaluator turns into a located error.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from archdsl.elaborate.values import describe
from archdsl.ir.dims import Ratio, SymDim, divide_exactly

MAX_INT_BITS = 64
MAX_SYMBOLIC_TEXT = 2_000     # printed length of a symbolic size before arithmetic on it is refused


class ScalarError(Exception):
    """A scalar operation that has no value; ``limit`` marks a bound (too large) rather than a mistake."""

    def __init__(self, message: str, hint: str | None = None, limit: bool = False) -> None:
        super().__init__(message)
        self.message, self.hint, self.limit = message, hint, limit


# op -> (function, defined on symbolic sizes?)
OPS: dict[str, tuple[Callable[[Any, Any], Any], bool]] = {
    "+": (operator.add, True),
    "-": (operator.sub, True),
    "*": (operator.mul, True),
    "/": (operator.truediv, False),     # a symbolic size divides with '//' only
    "//": (operator.floordiv, True),
    "%": (operator.mod, True),
    "==": (operator.eq, True),          # symbolic: equal polynomials
    "!=": (operator.ne, True),
    "<": (operator.lt, False),
    "<=": (operator.le, False),
    ">": (operator.gt, False),
    ">=": (operator.ge, False),
}
_NUMERIC = (int, float, SymDim)


def binop(op: str, a: Any, b: Any) -> Any:
    """``a op b`` for the operators of :data:`OPS` and ``**``; ScalarError when it has no bounded value."""
    if op == "**":
        return power(a, b)
    row = OPS.get(op)
    if row is None:
        raise _no_operator(op, a, b)
    fn, symbolic_ok = row
    symbolic = isinstance(a, SymDim) or isinstance(b, SymDim)
    if op in ("==", "!=") and not symbolic:
        return fn(a, b)
    if op == "+" and isinstance(a, (str, list, tuple)) and type(a) is type(b):
        return fn(a, b)
    if not (isinstance(a, _NUMERIC) and isinstance(b, _NUMERIC)):
        raise _no_operator(op, a, b)
    if symbolic:
        return _symbolic(op, a, b, fn, symbolic_ok)
    try:
        result = fn(a, b)
    except ZeroDivisionError:
        raise ScalarError("division by zero") from None
    if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
        raise ScalarError("integer result is too large", limit=True)
    if isinstance(result, float) and not math.isfinite(result):
        raise ScalarError(f"'{op}' gives {result} (not a finite number)")
    return result


def concat_cost(op: str, a: Any, b: Any) -> int:
    """Work units ``a op b`` costs before it runs: the length of a string or list concatenation, else 0."""
    if op == "+" and isinstance(a, (str, list, tuple)) and type(a) is type(b):
        return len(a) + len(b)
    return 0


def power(a: Any, b: Any) -> Any:
    """``a ** b`` on numbers, with a bounded exponent and a finite real result."""
    if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        raise ScalarError(f"'**' needs numbers, got {describe(a)} and {describe(b)}")
    if abs(b) > MAX_INT_BITS:
        raise ScalarError(f"exponent {b} is too large", limit=True)
    try:
        result = a ** b
    except (ArithmeticError, ValueError) as exc:
        raise ScalarError(f"'**' fails on {a!r} and {b!r}: {exc}") from None
    if isinstance(result, complex) or (isinstance(result, float) and not math.isfinite(result)):
        raise ScalarError(f"'**' on {a!r} and {b!r} gives no finite real number")
    return bounded(result)


def bounded(value: Any) -> Any:
    """Results obey the same bounds everywhere: 64-bit ints, finite floats."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ScalarError("integer result is too large", limit=True)
    if isinstance(value, float) and not math.isfinite(value):
        raise ScalarError(f"the result {value} is not a finite number")
    return value


def negate(value: Any) -> Any:
    """``-value`` for numbers and symbolic sizes."""
    if isinstance(value, _NUMERIC) and not isinstance(value, bool):
        return -value
    raise ScalarError(f"cannot negate {describe(value)}")


def truth(value: Any) -> bool:
    """A condition's value; refuses tensors, layers and undecidable symbolic comparisons."""
    if isinstance(value, (bool, int, float)):
        return bool(value)
    raise ScalarError(f"a condition must be a bool, got {describe(value)}")


def number(value: int | float) -> int | float:
    """A number literal within bounds."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ScalarError(f"the number {value} is larger than 64 bits", limit=True)
    if isinstance(value, float) and not math.isfinite(value):
        raise ScalarError(f"the number {value} is not finite")
    return value


def _symbolic(op: str, a: Any, b: Any, fn: Callable[[Any, Any], Any], ok: bool) -> Any:
    """Dim arithmetic; equality only when both sides normalise to the same polynomial."""
    if op in ("==", "!="):
        same = SymDim.lift(a) == SymDim.lift(b)
        return same if op == "==" else not same
    if op == "/" and isinstance(a, SymDim) and isinstance(b, int) and b > 0:   # exact, or ceil/floor it
        exact = divide_exactly(a, b)
        return exact if exact is not None else Ratio(a, b)
    if not ok:
        raise ScalarError(f"cannot apply '{op}' to the symbolic size {a if isinstance(a, SymDim) else b}",
                          "use '//' for sizes, or give the input a concrete size")
    if max(len(str(a)), len(str(b))) > MAX_SYMBOLIC_TEXT:
        raise ScalarError(f"the symbolic size expression is too large to compute with ({op})", limit=True)
    try:
        return fn(a, b)
    except ZeroDivisionError as exc:
        raise ScalarError(str(exc)) from None


def _no_operator(op: str, a: Any, b: Any) -> ScalarError:
    return ScalarError(f"operator '{op}' does not apply to {describe(a)} and {describe(b)}")
