"""``drop-eval-identities``: dropout, stochastic depth and explicit identities are the identity in eval mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from archdsl.ir.graph import Graph
from archdsl.ir.rewrite import GraphEditor
from archdsl.ir.weights import Weights
from archdsl.ops.base import Trait
from archdsl.passes.base import Change, Pass, PassResult


@dataclass(frozen=True)
class DropEvalIdentities(Pass):
    """x |> op -> x for every op with the EVAL_IDENTITY trait whose output type equals its input type."""

    name: ClassVar = "drop-eval-identities"
    summary: ClassVar = "remove dropout, stochastic depth and identity ops (the identity in eval mode)"
    preconditions: ClassVar = "eval mode; the op's output type equals its input type"

    def apply(self, graph: Graph, weights: Weights | None = None) -> PassResult:
        self.check_mode(graph)
        edit = GraphEditor(graph)
        report = []
        for original in graph.nodes:
            node = edit.live(original.name)      # nodes are removed only below, each once
            if not node.op.has(Trait.EVAL_IDENTITY) or node.params or len(node.inputs) != 1 \
                    or len(node.outputs) != 1 or edit.types[node.inputs[0]] != node.types[0]:
                continue
            edit.replace_uses(node.outputs[0], node.inputs[0])       # x |> dropout -> x
            edit.remove(node)
            report.append(Change(self.name, ".".join(node.scope), (node.module or node.name,), "", node.op.name,
                                 node.span))
        if not report:
            return PassResult(graph, weights, False)
        new = edit.finish()
        return PassResult(new, weights.only(new) if weights is not None else None, True, tuple(report))
