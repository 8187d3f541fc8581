"""Parameter types: does a value fit ``int``, ``float``, ``list[int]``, ``tuple[int, float]``, ``layer`` ...?

Works on the type nodes the grammar parses (:class:`archdsl.syntax.ast.TypeName`), never on their text.
"""

from __future__ import annotations

from typing import Any

from archdsl.elaborate.values import BlockRef, Layer, OpRef, is_layer
from archdsl.ir.dims import SymDim
from archdsl.syntax import ast as A


def _is_int(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, SymDim)


def _is_float(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_layer(v: Any) -> bool:
    return isinstance(v, (Layer, OpRef, BlockRef)) or is_layer(v)


# type name -> test of a value (``int`` takes symbolic sizes; ``float`` takes ints, converted on binding)
SCALAR_TYPES = {
    "int": _is_int,
    "float": _is_float,
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "any": lambda v: True,
    "layer": _is_layer,
    "list": lambda v: isinstance(v, (list, tuple)),
    "tuple": lambda v: isinstance(v, (list, tuple)),
}
SEQUENCE_TYPES = ("list", "tuple")


def matches(t: A.TypeName, value: Any) -> bool:
    """Does ``value`` fit the declared type ``t``? (``none`` fits every type: an absent optional value.)"""
    if value is None:
        return True
    if not t.args:
        test = SCALAR_TYPES.get(t.name)
        return test is not None and test(value)
    if t.name not in SEQUENCE_TYPES or not isinstance(value, (list, tuple)):
        return False
    if t.name == "tuple" and len(t.args) > 1:          # tuple[int, float]: one type per position
        return len(t.args) == len(value) and all(matches(a, v) for a, v in zip(t.args, value, strict=False))
    if len(t.args) > 1:                                # list[int, float] names no type
        return False
    return all(matches(t.args[0], v) for v in value)


def coerce(t: A.TypeName, value: Any) -> Any:
    """The bound value of a checked parameter: a ``float`` parameter given an int holds a float."""
    if t.name == "float" and not t.args and value is not None:
        return float(value)
    return value
