"""Front-end speed and memory: parse + elaborate + verify for ResNet-152 and three generated spec shapes.

Run ``python -m benchmarks.frontend`` from the repository root (``--sizes 1000,10000`` for a quicker run,
``--rounds N`` for more rounds). Each measurement runs in a fresh interpreter (cold caches, honest peak memory);
the rounds interleave every shape and size, and each figure is the median over the rounds of this process's CPU
time (steadier than wall time on a shared machine). Shapes:

- ``chain``: one identical documented residual unit repeated (the elaborator's replay cache takes it);
- ``varied``: a chain of documented units whose widths differ at every unit (no application repeats);
- ``distinct``: a spec of many distinct block definitions (one per 5 nodes), chained once each (parser-bound).

For every shape it prints phase times, microseconds per node, peak memory per node (the growth of ru_maxrss),
and the per-node time of the largest size relative to the smallest (1.0 is linear). Targets (issue 15 §2):
per-node time at 100k within 1.3x of 1k, 100k nodes in <= 5 s, <= 2 KiB per node at peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESNET = ROOT / "specs" / "resnet.arch"
TARGET_RATIO, TARGET_SECONDS, TARGET_KIB = 1.3, 5.0, 2.0

CHAIN = """
block Unit(c: int) {{
  "A residual unit of four nodes: linear, batch norm, relu, add."
  in x: [N, C]
  fc = Linear(c)
  norm = BatchNorm1d()
  out relu(x |> fc |> norm) + x
}}

model Chain(width: int = 16) {{
  in x: [N, width]
  body = seq[seq[Unit(width) for j in range({inner})] for i in range({outer})]
  out x |> body
}}
"""

VARIED = """
block Unit(c: int, h: int, k: int) {{
  "A residual unit of six nodes: widen to h, normalise, relu, mix to k, back to c, add. Widths vary per unit."
  in x: [N, c]
  up = Linear(h)
  norm = BatchNorm1d()
  mix = Linear(k)
  down = Linear(c)
  out x + (relu(x |> up |> norm) |> mix |> down)
}}

model Varied(width: int = 16) {{
  in x: [N, width]
  body = seq[seq[Unit(width, 8 + (i * {inner} + j) % 512, 8 + (i * {inner} + j) // 512) for j in range({inner})]
             for i in range({outer})]
  out x |> body
}}
"""

DISTINCT_BLOCK = """block B{i}(c: int) {{
  "Block {i}."
  in x: [N, c]
  a = Linear({w})
  n = LayerNorm()
  b = Linear(c)
  out x + (gelu(x |> a |> n) |> b)
}}
"""


def _loops(units: int) -> dict[str, int]:
    """Two nested ranges of about ``units`` iterations in all (a comprehension makes at most 10,000 items)."""
    inner = min(max(units, 1), 1000)
    return {"outer": max(1, round(units / inner)), "inner": inner}


def chain(nodes: int) -> tuple[str, str]:
    """About ``nodes`` nodes: identical four-node units (spec text, model name)."""
    return CHAIN.format(**_loops(nodes // 4)), "Chain"


def varied(nodes: int) -> tuple[str, str]:
    """About ``nodes`` nodes: six-node documented units, every unit with its own pair of widths."""
    return VARIED.format(**_loops(nodes // 6)), "Varied"


def distinct(nodes: int) -> tuple[str, str]:
    """About ``nodes`` nodes: one distinct five-node block definition per unit, each applied once."""
    count = max(1, nodes // 5)
    blocks = "".join(DISTINCT_BLOCK.format(i=i, w=8 + i % 61) for i in range(count))
    calls = ",\n    ".join(f"B{i}(16)" for i in range(count))
    return f"{blocks}\nmodel Distinct() {{\n  in x: [N, 16]\n  body = seq[\n    {calls}\n  ]\n  out x |> body\n}}\n", \
        "Distinct"


SHAPES = {"chain": chain, "varied": varied, "distinct": distinct}


def child(shape: str, nodes: int) -> dict:
    """One measurement in this fresh process, after a warm-up on a tiny spec: CPU seconds per phase and the
    growth of peak memory (ru_maxrss, KiB)."""
    from archdsl.elaborate import elaborate_model
    from archdsl.elaborate.loader import Loader
    from archdsl.verify import verify

    if shape == "resnet152":
        text, model, file = RESNET.read_text(encoding="utf-8"), "resnet152", str(RESNET)
    else:
        (text, model), file = SHAPES[shape](nodes), f"<{shape}-{nodes}>"
    from archdsl.ops.registry import all_ops

    all_ops()                       # imports (op families load when first named) and parser tables are start-up
    warm = Loader()                 # (benchmarks/startup.py), not per node
    verify(elaborate_model(warm.load_text(chain(4)[0], "<warm-up>"), warm, "Chain"))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    clock = time.process_time
    t0 = clock()
    loader = Loader()
    ns = loader.load_file(file) if shape == "resnet152" else loader.load_text(text, file)
    t1 = clock()
    graph = elaborate_model(ns, loader, model)
    t2 = clock()
    verify(graph, loader.sources)
    t3 = clock()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"nodes": len(graph.nodes), "bytes": len(text.encode()), "parse": t1 - t0, "elaborate": t2 - t1,
            "verify": t3 - t2, "peak_kib": max(peak - base, 0)}


def run_child(shape: str, nodes: int) -> dict:
    """Run :func:`child` in a fresh interpreter and return its figures."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.frontend", "--child", shape, str(nodes)], cwd=ROOT,
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_row(runs: list[dict]) -> dict:
    """Median of each figure over the rounds."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def line(name: str, r: dict) -> str:
    """One printed row."""
    total = r["parse"] + r["elaborate"] + r["verify"]
    return (f"{name:<18} {int(r['nodes']):>7,} nodes {r['bytes'] / 1024:8.0f} KiB  parse {r['parse']:7.3f} s  "
            f"elaborate {r['elaborate']:7.3f} s  verify {r['verify']:6.3f} s  total {total:7.3f} s  "
            f"{total / r['nodes'] * 1e6:6.1f} us/node  {r['peak_kib'] / r['nodes']:5.2f} KiB/node")


def main(argv: list[str] | None = None) -> int:
    """Print the table and, per shape, the scaling ratio and the targets; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="node counts (default 1000,10000,100000)")
    parser.add_argument("--shapes", default="chain,varied,distinct", help="shapes to run (default: all three)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are printed (default 3)")
    parser.add_argument("--child", nargs=2, metavar=("SHAPE", "NODES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    shapes = args.shapes.split(",")
    jobs = [("resnet152", 0)] + [(shape, n) for shape in shapes for n in sizes]
    results: dict[tuple[str, int], list[dict]] = {job: [] for job in jobs}
    for _ in range(args.rounds):
        for job in jobs:
            results[job].append(run_child(*job))
    rows = {job: median_row(runs) for job, runs in results.items()}
    print(f"CPU seconds, medians of {args.rounds} interleaved rounds, each run in a fresh interpreter")
    for (shape, n), r in rows.items():
        print(line(shape if shape == "resnet152" else f"{shape}-{n // 1000}k", r))
    ok = True
    for shape in shapes:
        small, big = rows[(shape, sizes[0])], rows[(shape, sizes[-1])]
        per = [(r["parse"] + r["elaborate"] + r["verify"]) / r["nodes"] for r in (small, big)]
        total = big["parse"] + big["elaborate"] + big["verify"]
        kib = big["peak_kib"] / big["nodes"]
        ratio = per[1] / per[0]
        print(f"{shape}: per-node time {sizes[-1] // 1000}k vs {sizes[0] // 1000}k {ratio:.2f}x (target <= "
              f"{TARGET_RATIO}); {sizes[-1] // 1000}k total {total:.2f} s (target <= {TARGET_SECONDS}); peak "
              f"{kib:.2f} KiB/node (target <= {TARGET_KIB})")
        ok &= ratio <= TARGET_RATIO and total <= TARGET_SECONDS and kib <= TARGET_KIB
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
