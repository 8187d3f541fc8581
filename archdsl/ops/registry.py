"""The op registry: every op family module listed once, by hand (no import side effects)."""

from __future__ import annotations

import difflib
import functools

from archdsl.ops import (
    activation,
    attention,
    compare,
    construct,
    conv,
    embed,
    graph,
    index,
    linear,
    linear_attention,
    mixing,
    norm,
    pool,
    regularize,
    resample,
    shape,
    tensor,
)
from archdsl.ops.base import OpDef

FAMILIES = (conv, linear, norm, activation, pool, tensor, shape, attention, embed, resample, regularize,
            mixing, linear_attention, graph, construct, index, compare)


@functools.cache
def all_ops() -> tuple[type[OpDef], ...]:
    """Every op class, in family order."""
    return tuple(op for family in FAMILIES for op in family.OPS)


@functools.cache
def _by_name() -> dict[str, type[OpDef]]:
    table: dict[str, type[OpDef]] = {}
    for op in all_ops():
        for key in (op.name, op.__name__):
            if key in table and table[key] is not op:
                raise RuntimeError(f"two ops are named {key!r}: {table[key].__name__} and {op.__name__}")
            table[key] = op
    return table


def lookup(name: str) -> type[OpDef] | None:
    """The op class spelled ``name`` in a spec (``Conv2d`` or ``conv2d``), or None."""
    return _by_name().get(name)


def op_class(name: str) -> type[OpDef]:
    """The op class for an IR op name; KeyError with a suggestion when unknown."""
    op = _by_name().get(name)
    if op is None:
        close = difflib.get_close_matches(name, list(_by_name()), n=1)
        raise KeyError(f"unknown op {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    return op


def spellings() -> list[str]:
    """Every name an op can be written with."""
    return list(_by_name())
