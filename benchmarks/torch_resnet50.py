"""archdsl-built ResNet-50 against a hand-written, torchvision-identical one: forward, construction, front end.

Run from the repository root: ``python -m benchmarks.torch_resnet50`` (``--quick`` for batch 2 at 112x112;
``--batch``, ``--size``, ``--repeat`` to choose). Every ratio is archdsl / baseline, measured in this process
with the two contenders interleaved (ABAB, then BABA), and reported as the median of the per-round ratios,
which drifts in machine load affect far less than a ratio of totals; the ratio of best times and of process CPU
times are printed beside it (on a shared machine, compare them: interference only ever adds time).
No assertions: it prints. The two modules run the same aten ops (see torch.profiler); what still differs between
runs is where glibc's malloc hands out fresh (page-faulting) memory for the 25 MB activations. Running with
``MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296`` removes that noise from both sides.

Targets: forward (eval, batch 8 at 224x224, 2 threads) <= 1.02x; construction <= 1.1x; front end
(parse + elaborate + verify) of ResNet-152 <= 0.5x the time of torch.fx.symbolic_trace on its generated module.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.fx

from archdsl.api import compile as compile_spec
from archdsl.backends.torch.build import build_module
from archdsl.ir.graph import Graph

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.baselines.resnet import resnet50  # noqa: E402

TARGETS = {"forward": 1.02, "construction": 1.1, "front end": 0.5}


def resnet_spec() -> Path:
    """The zoo's ResNet spec (specs/resnet.arch)."""
    from archdsl.zoo import spec_path

    return spec_path("resnet50")


Rounds = list[tuple[float, float, float, float]]   # (ours wall, theirs wall, ours cpu, theirs cpu) per round


def interleaved(ours: Callable[[], object], theirs: Callable[[], object], repeat: int) -> Rounds:
    """``repeat`` rounds of wall and process-CPU seconds, alternating which contender runs first."""
    rounds = []
    for i in range(repeat):
        times = {}
        for name in (("ours", "theirs") if i % 2 == 0 else ("theirs", "ours")):
            fn = ours if name == "ours" else theirs
            cpu, wall = time.process_time(), time.perf_counter()
            fn()
            times[name] = (time.perf_counter() - wall, time.process_time() - cpu)
        rounds.append((times["ours"][0], times["theirs"][0], times["ours"][1], times["theirs"][1]))
    return rounds


def report(label: str, rounds: Rounds) -> float:
    """Print median times, the median per-round ratio and the ratio of best times; return the median ratio."""
    ratio = statistics.median(r[0] / r[1] for r in rounds)
    best = min(r[0] for r in rounds) / min(r[1] for r in rounds)
    cpu_ratio = statistics.median(r[2] / r[3] for r in rounds)
    ours, theirs = (statistics.median(r[i] for r in rounds) * 1e3 for i in (0, 1))
    spread = sorted(r[0] / r[1] for r in rounds)
    target = TARGETS.get(label)
    verdict = "" if target is None else f"  target <= {target:.2f}x: {'met' if ratio <= target else 'MISSED'}"
    print(f"{label:>13}: archdsl {ours:8.1f} ms, baseline {theirs:8.1f} ms, ratio {ratio:.3f}x "
          f"[{spread[0]:.3f} .. {spread[-1]:.3f}], best-time ratio {best:.3f}x, CPU-time ratio {cpu_ratio:.3f}x, "
          f"{len(rounds)} rounds{verdict}")
    return ratio


def forward(graph: Graph, batch: int, size: int, repeat: int) -> float:
    """Eval-mode forward of the same weights through both modules."""
    ours = build_module(graph, seed=0).eval()
    theirs = resnet50(init_weights=False).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(batch, 3, size, size)
    with torch.inference_mode():
        diff = (ours(x) - theirs(x)).abs().max().item()
        for _ in range(2):
            ours(x), theirs(x)
        rounds = interleaved(lambda: ours(x), lambda: theirs(x), repeat)
    print(f"      outputs: max |archdsl - baseline| = {diff:.2e} (batch {batch}, {size}x{size})")
    return report("forward", rounds)


def construction(graph: Graph, repeat: int) -> float:
    """Module construction with PyTorch's default init (codegen included) vs the hand-written constructor."""
    cold = time.perf_counter()
    build_module(graph.replace(name="ResNet50Cold"), seed=0)
    cold = time.perf_counter() - cold

    def theirs(init_weights: bool = False) -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return resnet50(init_weights=init_weights)

    rounds = interleaved(lambda: build_module(graph, seed=0), theirs, repeat)
    ratio = report("construction", rounds)
    tv = interleaved(lambda: build_module(graph, seed=0), lambda: theirs(True), repeat)
    report("vs tv init", tv)
    print(f"               first build of a new graph (codegen + compile of the source): {cold * 1e3:.1f} ms")
    return ratio


def front_end(repeat: int) -> float:
    """parse + elaborate + verify of ResNet-152 vs torch.fx.symbolic_trace of the module archdsl generates."""
    path = resnet_spec()
    graph = compile_spec(path, "resnet152")
    module = build_module(graph, seed=0)
    rounds = interleaved(lambda: compile_spec(path, "resnet152"), lambda: torch.fx.symbolic_trace(module), repeat)
    print(f"    ResNet-152: {len(graph.nodes)} IR nodes, {graph.num_params():,} parameters")
    return report("front end", rounds)


def main(argv: list[str] | None = None) -> None:
    """Run the three comparisons and print one line each."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeat", type=int, default=9, help="interleaved rounds per comparison")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="batch 2 at 112x112, 5 rounds")
    p.add_argument("--only", choices=("forward", "construction", "front-end"), help="run one comparison")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.repeat = 2, 112, 5
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f}, spec {resnet_spec()}")
    graph = compile_spec(resnet_spec(), "resnet50")
    if args.only in (None, "forward"):
        forward(graph, args.batch, args.size, args.repeat)
    if args.only in (None, "construction"):
        construction(graph, args.repeat)
    if args.only in (None, "front-end"):
        front_end(args.repeat)


if __name__ == "__main__":
    main()
