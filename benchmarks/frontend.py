"""Front-end speed: parse + elaborate + verify for ResNet-152 and generated chains of ~1k and ~10k nodes.

Run ``python benchmarks/frontend.py`` (``--repeat N`` to take the best of N runs). Prints the time of each
phase, the time per node, and the per-node ratio of the 10k chain to the 1k chain (ideally 1.0: linear).
Target on a 2-core machine: the 10k-node chain in <= 1 s, per-node ratio <= 1.2.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archdsl.elaborate import elaborate_model
from archdsl.elaborate.loader import Loader, _parse_cached
from archdsl.ir.graph import Graph
from archdsl.verify import verify

RESNET = Path(__file__).resolve().parent.parent / "specs" / "resnet.arch"

CHAIN = """
block Unit(c: int) {{
  "A residual unit of four nodes: linear, batch norm, relu, add."
  in x: [N, C]
  fc = Linear(c)
  norm = BatchNorm1d()
  out relu(x |> fc |> norm) + x
}}

model Chain(width: int = 16, depth: int = {depth}) {{
  in x: [N, width]
  body = seq[Unit(width) for i in range(depth)]
  out x |> body
}}
"""


@dataclass
class Timing:
    """Best-of-N seconds per phase for one spec."""

    name: str
    nodes: int
    parse: float
    elaborate: float
    verify: float

    @property
    def total(self) -> float:
        """Parse + elaborate + verify."""
        return self.parse + self.elaborate + self.verify

    def line(self) -> str:
        """One printed row."""
        per_node = self.total / max(self.nodes, 1) * 1e6
        return (f"{self.name:<12} {self.nodes:>7,} nodes  parse {self.parse * 1e3:8.1f} ms  elaborate "
                f"{self.elaborate * 1e3:8.1f} ms  verify {self.verify * 1e3:7.1f} ms  total {self.total * 1e3:8.1f} ms"
                f"  {per_node:6.1f} us/node")


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock_fn = time.perf_counter


def _clock(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = _clock_fn()
    result = fn(*args)
    return _clock_fn() - start, result


def measure(name: str, load: Callable[[Loader], object], model: str, repeat: int) -> Timing:
    """Best of ``repeat`` runs of each phase (every run starts from a fresh Loader and a cold parse cache)."""
    best = [float("inf")] * 3
    graph: Graph | None = None
    for _ in range(repeat):
        _parse_cached.cache_clear()    # measure the parse itself, not the cache
        loader = Loader()
        t_parse, ns = _clock(load, loader)
        t_elab, graph = _clock(elaborate_model, ns, loader, model)
        t_verify, _ = _clock(verify, graph, loader.sources)
        best = [min(b, t) for b, t in zip(best, (t_parse, t_elab, t_verify), strict=False)]
    assert graph is not None
    return Timing(name, len(graph.nodes), *best)


def chain(depth: int) -> str:
    """A chain of ``depth`` four-node residual units: about ``4 * depth`` nodes."""
    return CHAIN.format(depth=depth)


def _load_chain(depth: int, loader: Loader) -> object:
    return loader.load_text(chain(depth), f"<chain-{depth}>")


def main(argv: list[str] | None = None) -> int:
    """Print the table and the scaling ratio; exit 1 when the targets are missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs (default 5)")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="wall time, or this process's CPU time (steadier on a busy machine)")
    args = parser.parse_args(argv)
    global _clock_fn
    _clock_fn = CLOCKS[args.clock]
    measure("warm-up", functools.partial(_load_chain, 10), "Chain", 1)
    rows = [measure("resnet152", lambda ld: ld.load_file(str(RESNET)), "resnet152", args.repeat)]
    for depth, label in ((250, "chain-1k"), (2500, "chain-10k")):
        rows.append(measure(label, functools.partial(_load_chain, depth), "Chain", args.repeat))
    for row in rows:
        print(row.line())
    small, big = rows[1], rows[2]
    ratio = (big.total / big.nodes) / (small.total / small.nodes)
    print(f"per-node time, 10k vs 1k chain: {ratio:.2f}x (target <= 1.2x); 10k chain total {big.total:.3f} s "
          f"(target <= 1 s)")
    return 0 if ratio <= 1.2 and big.total <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
