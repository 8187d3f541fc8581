"""Re-use of block expansions: a named block applied again with the same arguments and input types
produces the same nodes under another path, so the recorded nodes are cloned instead of re-evaluated.

ResNet-152 applies one Bottleneck 35 times in a row with equal arguments and shapes; cloning is several
times cheaper than evaluating the block body again, and gives exactly the graph evaluation would give.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from archdsl.elaborate.builder import GraphBuilder
from archdsl.elaborate.values import Tensor
from archdsl.ir.dims import SymDim
from archdsl.ir.graph import Node

_PLAIN = (bool, int, float, str, SymDim, type(None))
_setdefault = dict.setdefault
_EXACT = frozenset(_PLAIN)


def plain_key(value: Any) -> tuple | None:
    """A hashable, type-exact key for a parameter value, or None when the value is not plain data.

    One flat tuple (a prefix code: a scalar is its type and value, a list or tuple its type, its length and its
    items' codes), so a key is one object however deeply the value nests.
    """
    out: list[Any] = []
    return tuple(out) if _encode(value, out) else None


def arguments_key(args: tuple, kwargs: tuple) -> tuple | None:
    """``plain_key((args, kwargs))``; for positional plain scalars only (``Unit(16, 8, 4)``, the usual block
    application) without the recursion."""
    if kwargs:
        return plain_key((tuple(args), tuple(kwargs)))
    key: list[Any] = [tuple, 2, tuple, len(args)]
    for value in args:
        kind = type(value)
        if kind not in _EXACT:
            return plain_key((tuple(args), ()))
        key += (kind, value)
    key += (tuple, 0)
    return tuple(key)


def _encode(value: Any, out: list[Any]) -> bool:
    kind = type(value)
    if kind in _EXACT or not isinstance(value, (list, tuple)) and isinstance(value, _PLAIN):
        out += (kind, value)
        return True
    if isinstance(value, (list, tuple)):
        out += (kind, len(value))
        for item in value:
            if not _encode(item, out):
                return False
        return True
    return False            # layers and other objects: expand normally, never guess their identity


class Expansion(NamedTuple):
    """What one named block application added to the graph (a tuple: one is made per block application)."""

    path: tuple[str, ...]
    inputs: tuple[str, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[Tensor, ...]
    docs: tuple[tuple[str, str], ...]


def _moved(name: str | None, old: str, new: str) -> str | None:
    """``name`` with the module prefix ``old`` replaced by ``new`` (names outside ``old`` are kept)."""
    if name is None or not old:
        return name
    if name == old:
        return new
    if name.startswith(old + "."):
        return new + name[len(old):]
    return name


def replay(builder: GraphBuilder, exp: Expansion, at: tuple[str, ...], inputs: list[Tensor],
           owner: tuple[int | str, ...]) -> list[Tensor]:
    """Clone a recorded expansion under module path ``at`` on new ``inputs``.

    Re-applying the same layer (``at`` equal to the recorded path) shares its parameters, whose
    ownership the first expansion already established; a new path claims its modules for ``owner``.
    """
    old, new = ".".join(exp.path), ".".join(at)
    rename = dict(zip(exp.inputs, (t.value for t in inputs), strict=True))
    # the node making each value the clone reads (the inputs' when they know it): add_node's producer, without a
    # search of the graph's value names
    made: dict[str, Any] = {t.value: t.node for t in inputs if t.node is not None}
    prefix = tuple(new.split("."))
    scopes: dict[tuple[str, ...], tuple[str, ...]] = {}
    params = builder.params
    for key, doc in exp.docs:
        builder.add_doc(_moved(key, old, new) or key, doc)
    for node in exp.nodes:
        module = _moved(node.module, old, new)
        mapping = {}
        for local, full in node.params.items():
            moved = _moved(full, old, new) or full
            if moved != full:           # (the same name: the recorded expansion declared it)
                param = params[full].renamed(moved)
                if _setdefault(params, moved, param) is param:      # new here (one look-up of 100k+ names)
                    builder.count_param(param, node.span)
            mapping[local] = moved
        if mapping and module is not None and old != new:
            builder.claim_module(module, owner, node.span)
        scope = scopes.get(node.scope)
        if scope is None:           # nodes of one block share their scope tuple (and its strings)
            scope = scopes[node.scope] = prefix + node.scope[len(exp.path):] \
                if new and node.scope[:len(exp.path)] == exp.path else node.scope
        ins = [rename.get(v, v) for v in node.inputs]
        outs = builder.add_node(node.op, ins, node.types, mapping, module, scope, node.span, node.tags,
                                made.get(ins[0]) if len(ins) == 1 and builder.shortcuts else None)
        clone = builder.nodes[-1]
        for v, out in zip(node.outputs, outs, strict=True):
            rename[v] = out
            made[out] = clone
    return [Tensor(value, t.type, t.span, made.get(value))
            for t in exp.outputs for value in (rename.get(t.value, t.value),)]
