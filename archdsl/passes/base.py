"""What every pass shares: the Pass contract, its result, and the records a report is made of."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from archdsl.errors import ArchError, Diagnostic
from archdsl.ir.graph import Graph
from archdsl.ir.types import Span
from archdsl.ir.weights import Weights


class PassError(ArchError):
    """A pass cannot do what the spec asks exactly (a `reparam` claim that is false), or broke the graph."""


@dataclass(frozen=True)
class Change:
    """One rewrite: which modules or nodes went into which new one, where in the spec."""

    pass_name: str
    scope: str                         # module path of the enclosing block ("" = the model)
    merged: tuple[str, ...]            # module paths (or node names) of what was replaced
    into: str                          # module path (or value) of the result; "" when removed
    note: str = ""
    span: Span | None = None

    def describe(self) -> str:
        """``fold-bn: layer1.0.conv1 + layer1.0.bn1 -> layer1.0.conv1``."""
        target = self.into or "(removed)"
        text = f"{self.pass_name}: {' + '.join(self.merged)} -> {target}"
        return text + (f"  [{self.note}]" if self.note else "")


@dataclass(frozen=True)
class PassResult:
    """A pass's output: the new graph, the mapped weights (weight mode), whether anything changed, and how."""

    graph: Graph
    weights: Weights | None
    changed: bool
    report: tuple[Change, ...] = ()


@dataclass(frozen=True)
class Pass:
    """A function-preserving rewrite. Subclasses are frozen dataclasses whose fields are the pass's options."""

    name: ClassVar[str]                # kebab-case CLI name
    summary: ClassVar[str]             # one line for `--help` and reports
    requires_eval: ClassVar[bool] = True   # valid only for eval-mode semantics (BatchNorm statistics, dropout)
    preconditions: ClassVar[str] = ""      # when a rewrite is exact (shown by `archdsl simplify --help`)

    def apply(self, graph: Graph, weights: Weights | None = None) -> PassResult:
        """Rewrite ``graph`` (and ``weights`` when given); never mutates its inputs."""
        raise PassError(Diagnostic(f"pass {self.name} has no rewrite",
                                   hint="a Pass subclass overrides apply(graph, weights); `archdsl simplify --help` "
                                        "lists the passes that do"))

    def check_mode(self, graph: Graph) -> None:
        """Refuse a train-mode graph when the rewrite is exact only in eval mode."""
        if self.requires_eval and graph.mode != "eval":
            raise PassError(Diagnostic(f"pass {self.name} is exact only in eval mode, and graph {graph.name} is in "
                                       "train mode", graph.span,
                                       "run it through archdsl.passes.run_pipeline (which switches to eval mode), "
                                       "or use graph.replace(mode='eval')"))
