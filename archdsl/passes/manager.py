"""The pass manager: run named pipelines to a fixpoint, verify after every pass, and name the pass that broke."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from archdsl.errors import ArchError, Diagnostic, UsageError
from archdsl.ir.graph import Graph
from archdsl.ir.weights import Weights
from archdsl.passes.base import Change, Pass, PassError
from archdsl.passes.registry import PASSES, PIPELINES
from archdsl.verify import verify

MAX_ROUNDS = 8            # a pipeline normally settles in two rounds; more means two passes undo each other


@dataclass(frozen=True)
class Step:
    """One pass application that changed something: the pass, its round, and the graph it returned."""

    pass_name: str
    round: int
    graph: Graph
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class PipelineResult:
    """The input and final graphs, the final weights, and every step in the order it happened."""

    source: Graph
    graph: Graph
    weights: Weights | None
    steps: tuple[Step, ...]
    rounds: int
    passes: tuple[Pass, ...] = ()          # the pipeline that ran (reports ask passes to explain their choices)

    @property
    def changes(self) -> tuple[Change, ...]:
        """Every change, in order."""
        return tuple(c for s in self.steps for c in s.changes)


def resolve(passes: str | list[str] | tuple[str, ...] | list[Pass]) -> list[Pass]:
    """Pass instances for a pipeline name, a comma-separated list of pass names, or pass instances."""
    names: list[str | Pass]
    if isinstance(passes, str):
        names = list(PIPELINES[passes]) if passes in PIPELINES else [p.strip() for p in passes.split(",") if p.strip()]
    else:
        names = list(passes)
    out: list[Pass] = []
    for item in names:
        if isinstance(item, Pass):
            out.append(item)
            continue
        if item not in PASSES:
            raise UsageError(Diagnostic(f"unknown pass or pipeline '{item}'",
                                        hint=f"pipelines: {', '.join(PIPELINES)}; passes: {', '.join(PASSES)}"))
        out.append(PASSES[item]())
    if not out:
        raise UsageError(Diagnostic("no passes given", hint=f"pipelines: {', '.join(PIPELINES)}"))
    return out


def run_pipeline(graph: Graph, weights: Weights | None = None, passes: str | list = "deploy", *,
                 verify_each: bool = True, max_rounds: int = MAX_ROUNDS,
                 on_step: Callable[[Step, Weights | None], None] | None = None) -> PipelineResult:
    """Apply ``passes`` in order, round after round, until a round changes nothing.

    A graph in train mode is switched to eval mode first when any pass is exact only in eval mode (the
    deploy form computes what the training form computes under ``model.eval()``). ``on_step`` sees every
    step that changed something, with the weights after it (``archdsl test`` checks each one).
    """
    pipeline = resolve(passes)
    source = graph
    if graph.mode != "eval" and any(p.requires_eval for p in pipeline):
        graph = graph.replace(mode="eval")
    if weights is not None:
        weights.check(graph)
    steps: list[Step] = []
    for rounds in range(1, max_rounds + 1):
        changed = False
        for p in pipeline:
            result = p.apply(graph, weights)
            if not result.changed:
                continue
            if verify_each:
                _verify_after(p, result.graph, result.weights)
            graph, weights = result.graph, result.weights
            steps.append(Step(p.name, rounds, graph, result.report))
            if on_step is not None:
                on_step(steps[-1], weights)
            changed = True
        if not changed:
            if steps and not verify_each:
                _verify_after(pipeline[-1], graph, weights)      # the result is verified in any case
            return PipelineResult(source, graph, weights, tuple(steps), rounds, tuple(pipeline))
    raise PassError(Diagnostic(f"the pipeline {', '.join(p.name for p in pipeline)} did not settle after "
                               f"{max_rounds} rounds", graph.span, "two passes keep undoing each other"))


def _verify_after(p: Pass, graph: Graph, weights: Weights | None) -> None:
    """Verify the graph (and weights) a pass returned; an error names the pass."""
    try:
        verify(graph)
        if weights is not None:
            weights.check(graph)
    except ArchError as exc:
        first = exc.diagnostics[0]
        raise PassError(Diagnostic(f"pass {p.name} produced an invalid graph: {first.message}", first.span,
                                   "this is a bug in the pass; please report it with the spec")) from exc
