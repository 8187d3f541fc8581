"""What a pipeline did, for people and programs: per pass and per block, nodes, parameters and MACs
before -> after, and what was merged into what."""

from __future__ import annotations

import json
from dataclasses import dataclass

from archdsl.analysis import bind, human, stats
from archdsl.errors import ArchError
from archdsl.ir.dims import SymDim
from archdsl.ir.graph import Graph
from archdsl.passes.manager import PipelineResult

DEFAULT_SIZE = 224           # symbolic spatial sizes are bound to this for MAC figures (N to 1)


@dataclass(frozen=True)
class Figures:
    """Size of a graph (or of one block of it)."""

    nodes: int
    params: int
    macs: int | None             # None when the graph cannot be sized at the probe sizes

    def arrow(self, after: Figures) -> dict[str, str]:
        """``{"nodes": "152 -> 47", ...}`` with human-readable numbers."""
        return {k: f"{_fmt(getattr(self, k))} -> {_fmt(getattr(after, k))}" for k in ("nodes", "params", "macs")}


def _fmt(n: int | None) -> str:
    return "?" if n is None else f"{n:,}" if n < 10_000 else human(n)


def probe_sizes(graph: Graph, sizes: dict[str, int] | None = None) -> dict[str, int]:
    """Concrete input sizes for MAC figures: the given ones, N=1, every other symbol DEFAULT_SIZE."""
    from archdsl.ir.symbols import sizes_near

    out = sizes_near(graph.inputs, DEFAULT_SIZE, 1, lead={"N", "B"})     # P = 224 // 32 for [N, 3, 32*P, ..]
    out.update(sizes or {})
    return out


def figures(graph: Graph, sizes: dict[str, int], prefix: str | None = None) -> Figures:
    """Nodes, trainable parameters and MACs of ``graph`` (or of the modules under ``prefix``)."""
    try:
        bound = bind(graph, {k: v for k, v in sizes.items() if k in graph.symbols()})
    except ArchError:                       # a model that does not run at the probe sizes: no MAC figures
        bound = graph
    rows = stats(bound).rows
    pairs = list(zip(bound.nodes, rows, strict=False))
    if prefix is not None:
        pairs = [(n, r) for n, r in pairs if _under(n.module or ".".join(n.scope), prefix)]
    try:
        macs: int | None = sum(_int(r.macs) for _, r in pairs)
    except (ValueError, KeyError, TypeError, ArithmeticError):
        macs = None
    return Figures(len(pairs), sum(r.params for _, r in pairs), macs)


def _under(path: str, prefix: str) -> bool:
    return not prefix or path == prefix or path.startswith(prefix + ".")


def _int(d) -> int:
    return d if isinstance(d, int) else SymDim.evaluate(d, {})


@dataclass(frozen=True)
class Report:
    """The whole report as data; ``text()`` and ``to_json()`` render it."""

    model: str
    sizes: dict[str, int]
    total: tuple[Figures, Figures]
    passes: tuple[tuple[str, int, Figures, Figures], ...]       # pass, rewrites, before, after
    blocks: tuple[tuple[str, Figures, Figures, tuple[str, ...]], ...]   # block, before, after, what merged
    rounds: int
    weights: bool
    decisions: tuple[tuple[str, str, dict], ...] = ()   # pass, text, data: what a cost model chose (and kept)

    def summary(self) -> str:
        """The first part of :meth:`text`: totals and each pass."""
        return self.text().split("\n\nper block:")[0].rstrip("\n") + "\n"

    def text(self) -> str:
        """A human-readable report."""
        at = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        mode = "weight mode (deploy weights computed)" if self.weights else "structural mode (no weights given)"
        before, after = self.total
        lines = [f"simplify {self.model}: {mode}; MACs at {at}; settled after {self.rounds} round(s)",
                 _line("total", before.arrow(after)), "", "per pass:"]
        lines += [_line(f"  {name} ({n} rewrite{'s' if n != 1 else ''})", b.arrow(a)) for name, n, b, a in self.passes]
        if not self.passes:
            lines.append("  nothing to simplify")
        if self.blocks:
            lines += ["", "per block:"]
            for name, b, a, merged in self.blocks:
                lines.append(_line(f"  {name or '(model)'}", b.arrow(a)))
                lines += [f"      {m}" for m in merged]
        if self.decisions:
            lines += ["", "cost-model decisions (collapsed and kept segments, cost = MACs + traffic with the "
                      "backend's penalties):"]
            lines += [f"  {name}: {line}" if i == 0 else f"  {line}" for name, text, _ in self.decisions
                      for i, line in enumerate(text.splitlines())]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        """The report as JSON."""
        def fig(f: Figures) -> dict:
            return {"nodes": f.nodes, "params": f.params, "macs": f.macs}
        return json.dumps({
            "model": self.model, "sizes": self.sizes, "weights": self.weights, "rounds": self.rounds,
            "before": fig(self.total[0]), "after": fig(self.total[1]),
            "passes": [{"pass": p, "rewrites": n, "before": fig(b), "after": fig(a)} for p, n, b, a in self.passes],
            "blocks": [{"block": name, "before": fig(b), "after": fig(a), "changes": list(m)}
                       for name, b, a, m in self.blocks],
            "decisions": [{"pass": name, **data} for name, _, data in self.decisions],
        }, indent=1)


def _line(label: str, arrows: dict[str, str]) -> str:
    return f"{label:<44} nodes {arrows['nodes']:<14} params {arrows['params']:<18} MACs {arrows['macs']}"


def make_report(result: PipelineResult, sizes: dict[str, int] | None = None) -> Report:
    """Summarise ``result``: totals, each pass's effect (summed over rounds), and each block that changed."""
    sizes = probe_sizes(result.source, sizes)
    total = (figures(result.source, sizes), figures(result.graph, sizes))
    passes: dict[str, list] = {}
    previous = result.source
    for step in result.steps:
        before, after = figures(previous, sizes), figures(step.graph, sizes)
        entry = passes.setdefault(step.pass_name, [0, Figures(0, 0, 0)])
        entry[0] += len(step.changes)
        entry[1] = Figures(entry[1].nodes + before.nodes - after.nodes, entry[1].params + before.params - after.params,
                           _minus(_plus(entry[1].macs, before.macs), after.macs))
        previous = step.graph
    base = total[0]
    rows: list[tuple] = []
    seen: dict[str, list[str]] = {}
    for change in result.changes:
        seen.setdefault(_block_of(change.into or (change.merged[0] if change.merged else "")), []).append(
            change.describe())
    for block, merged in seen.items():
        rows.append((block, figures(result.source, sizes, block), figures(result.graph, sizes, block), tuple(merged)))
    return Report(result.source.name, sizes, total,
                  tuple((p, n, base, Figures(base.nodes - d.nodes, base.params - d.params, _minus(base.macs, d.macs)))
                        for p, (n, d) in passes.items()),
                  tuple(rows), result.rounds, result.weights is not None, _decisions(result))


def _decisions(result: PipelineResult) -> tuple[tuple[str, str, dict], ...]:
    """What passes with a cost model chose, on the graph each first saw (the collapsed segments and the kept)."""
    out = []
    for p in result.passes:
        decide = getattr(p, "decisions", None)
        if decide is None:
            continue
        graph = result.source if result.source.mode == "eval" else result.source.replace(mode="eval")
        for step in result.steps:
            if step.pass_name == p.name:
                break
            graph = step.graph
        else:
            graph = result.graph
        out += [(p.name, d.describe(), d.to_dict()) for d in decide(graph)]
    return tuple(out)


def _plus(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def _minus(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a - b


def _block_of(path: str) -> str:
    """The block a change belongs to: the parent of the module it produced."""
    return path.rpartition(".")[0]
