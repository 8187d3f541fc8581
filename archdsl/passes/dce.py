"""``dce``: remove nodes whose results nobody reads (and the parameters only they used)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from archdsl.ir.graph import Graph
from archdsl.ir.weights import Weights
from archdsl.passes.base import Change, Pass, PassResult


@dataclass(frozen=True)
class DeadCodeElimination(Pass):
    """Drop nodes with no readers, from the outputs backwards; parameters no node uses go with them."""

    name: ClassVar = "dce"
    summary: ClassVar = "remove computations whose results are never used"
    preconditions: ClassVar = "none (graph outputs are live)"
    requires_eval: ClassVar = False

    def apply(self, graph: Graph, weights: Weights | None = None) -> PassResult:
        live = set(graph.outputs.values())
        keep = []
        for node in reversed(graph.nodes):
            if live.intersection(node.outputs):
                keep.append(node)
                live.update(node.inputs)
        if len(keep) == len(graph.nodes):
            return PassResult(graph, weights, False)
        kept = {n.name for n in keep}
        dead = [n for n in graph.nodes if n.name not in kept]
        used = {full for n in keep for full in n.params.values()}
        new = graph.replace(nodes=tuple(reversed(keep)), params={k: v for k, v in graph.params.items() if k in used})
        report = tuple(Change(self.name, ".".join(n.scope), (n.module or n.name,), "", span=n.span) for n in dead)
        return PassResult(new, weights.only(new) if weights is not None else None, True, report)
