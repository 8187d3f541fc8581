"""Well-formedness and type checking of a finished Graph, with Diagnostics that point at the spec."""

from __future__ import annotations

from archdsl.errors import Diagnostic, OpError, VerifyError
from archdsl.ir.graph import Graph
from archdsl.ops.base import Trait


def diagnostics(graph: Graph) -> list[Diagnostic]:
    """Every problem in ``graph``: undefined or redefined values, cycles, type drift, unused results."""
    found: list[Diagnostic] = []
    defined: dict[str, object] = dict(graph.inputs)
    used: set[str] = set()
    for node in graph.nodes:
        for v in node.inputs:
            if v not in defined:
                found.append(Diagnostic(f"{node.op.name} node '{node.name}' reads '{v}', which is not defined "
                                        "before it (a dangling value or a cycle)", node.span))
            used.add(v)
        for v in node.outputs:
            if v in defined:
                found.append(Diagnostic(f"value '{v}' is defined twice", node.span))
            defined[v] = node
        for local, full in node.params.items():
            if full not in graph.params:
                found.append(Diagnostic(f"{node.op.name} node '{node.name}' uses parameter '{full}', which is "
                                        "not declared", node.span))
        found += _retype(graph, node)
    for name, v in graph.outputs.items():
        if v not in defined:
            found.append(Diagnostic(f"output '{name}' refers to undefined value '{v}'", graph.span))
        used.add(v)
    for name in graph.inputs:
        if name not in used:
            found.append(Diagnostic(f"input '{name}' is never used", graph.input_spans.get(name), severity="error"))
    found += _dead_results(graph, used)
    return found


def _retype(graph: Graph, node) -> list[Diagnostic]:
    """Re-run the op's shape rule; a mismatch means the graph was edited inconsistently."""
    types = graph.value_types()
    try:
        ins = [types[v] for v in node.inputs]
    except KeyError:
        return []
    try:
        outs = node.op.infer(ins)
    except OpError as exc:
        return [Diagnostic(f"{node.op.name}: {exc}", node.span, exc.hint)]
    if tuple(outs) != tuple(node.types):
        got = ", ".join(str(t) for t in node.types)
        want = ", ".join(str(t) for t in outs)
        return [Diagnostic(f"{node.op.name} node '{node.name}' is typed {got} but its inputs give {want}", node.span)]
    return []


def _dead_results(graph: Graph, used: set[str]) -> list[Diagnostic]:
    """A computing node none of whose outputs is used is dead code (warning; ``dce`` removes it)."""
    out = []
    for node in graph.nodes:
        if not any(v in used for v in node.outputs) and not node.op.has(Trait.STOCHASTIC):
            out.append(Diagnostic(f"the result of {node.op.name} ('{node.outputs[0]}') is never used", node.span,
                                  "remove the computation or use its result", severity="warning"))
    return out


def verify(graph: Graph, sources: dict[str, str] | None = None) -> list[Diagnostic]:
    """Raise VerifyError on any error; return the warnings."""
    found = diagnostics(graph)
    errors = [d for d in found if d.severity == "error"]
    if errors:
        raise VerifyError(errors, sources)
    return found
