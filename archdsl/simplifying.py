"""``archdsl.simplify``: the deploy form of a spec or built model (module named apart so the name stays the function)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from archdsl.api import Source, compile
from archdsl.ir.graph import Graph
from archdsl.ir.weights import Weights
from archdsl.passes.manager import PipelineResult, run_pipeline
from archdsl.passes.report import Report, make_report


@dataclass(frozen=True)
class Simplified:
    """A simplified model: the deploy graph, its weights (None in structural mode), and what changed."""

    result: PipelineResult

    @property
    def graph(self) -> Graph:
        """The deploy-form graph (eval mode)."""
        return self.result.graph

    @property
    def source(self) -> Graph:
        """The graph before simplification."""
        return self.result.source

    @property
    def weights(self) -> Weights | None:
        """Deploy weights by state_dict name (None when no weights were given)."""
        return self.result.weights

    @cached_property
    def report(self) -> Report:
        """Nodes, parameters and MACs before -> after, per pass and per block."""
        return make_report(self.result)

    def module(self, seed: int | None = 0):
        """An ``nn.Module`` of the deploy form in eval mode: the deploy weights loaded, or seeded init without them."""
        from archdsl.backends.torch.build import build_module

        module = build_module(self.graph, seed=seed if self.weights is None else None)
        if self.weights is not None:
            dtypes = {t.dtype for t in self.weights.values() if t.is_floating_point()}
            if len(dtypes) == 1:                   # float64 weights give a float64 module (exact comparisons)
                module = module.to(dtypes.pop())
            module.load_state_dict(self.weights.state_dict(), strict=True)
        return module.eval()


def simplify(source: Source | Graph, model: str | None = None, *, weights: Any = None, passes: str | list = "deploy",
             verify_each: bool = True, **params: Any) -> Simplified:
    """Run ``passes`` (default: the ``deploy`` pipeline) on a spec, a zoo name or a Graph.

    ``weights`` (a state_dict, an ``nn.Module`` built by archdsl, or Weights) switches on weight mode:
    the deploy weights are computed so that the deploy model computes what the given one computes in
    eval mode. Without weights the rewrite is structural (graph and spec only).
    """
    graph = source if isinstance(source, Graph) else compile(source, model, **params)
    mapped = None if weights is None else Weights.of(weights, graph)
    return Simplified(run_pipeline(graph, mapped, passes, verify_each=verify_each))
