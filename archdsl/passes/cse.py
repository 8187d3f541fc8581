"""``cse``: one computation for identical nodes (same op and attributes, same inputs, same parameters)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from archdsl.ir.graph import Graph, Node
from archdsl.ir.rewrite import GraphEditor
from archdsl.ir.weights import Weights
from archdsl.ops.base import Trait
from archdsl.passes.base import Change, Pass, PassResult


def _key(node: Node) -> tuple | None:
    """What makes two nodes compute the same value; None for random ops, which never merge."""
    if node.op.has(Trait.STOCHASTIC) and not node.op.has(Trait.EVAL_IDENTITY):
        return None
    return (type(node.op), repr(sorted(node.op.attrs().items())), node.inputs, tuple(sorted(node.params.items())),
            node.types)


@dataclass(frozen=True)
class CommonSubexpressions(Pass):
    """a = f(x); b = f(x) -> b uses a (a shared layer applied twice to one input is one application)."""

    name: ClassVar = "cse"
    summary: ClassVar = "compute identical expressions once"
    preconditions: ClassVar = "same op and attributes, inputs and parameters; never random ops"
    requires_eval: ClassVar = False

    def apply(self, graph: Graph, weights: Weights | None = None) -> PassResult:
        edit = GraphEditor(graph)
        first: dict[tuple, Node] = {}
        rename: dict[str, str] = {}
        report = []
        for node in graph.nodes:
            node = node.model_copy(update={"inputs": tuple(rename.get(v, v) for v in node.inputs)})
            key = _key(node)
            if key is None:
                continue
            seen = first.setdefault(key, node)
            if seen is node:
                continue
            for old, kept in zip(node.outputs, seen.outputs, strict=True):
                rename[old] = kept
                edit.replace_uses(old, kept)
            edit.remove(node)
            report.append(Change(self.name, ".".join(node.scope), (node.module or node.name,),
                                 seen.module or seen.name, span=node.span))
        if not report:
            return PassResult(graph, weights, False)
        new = edit.finish()
        return PassResult(new, weights.only(new) if weights is not None else None, True, tuple(report))
