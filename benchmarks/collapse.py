"""collapse-linear: SESR-M5 x2 collapsed vs expanded (inference and training step), and the cost model's table.

Run from the repository root: ``python -m benchmarks.collapse`` (``--quick`` for 180x320 inputs and fewer
rounds; ``--threads``, ``--repeat`` to choose). Every ratio is measured in this process with the two forms
interleaved (ABAB, then BABA), median of per-round ratios. The collapsed weights are computed from random
expanded weights, and the relative error of the collapsed outputs is printed beside the speed-up.

Training: a step (forward, backward, SGD) of SESR-M5 x2 on batch 8 of 64x64 crops with ``collapse_train`` against
the expanded form, and the forward MACs of both on the issue's batch of 32 64x64 crops (torch's FLOP counter).

The cost model's table: for each chain (an expansion, a bottleneck, two 3x3 convs, depthwise + pointwise,
1x7 + 7x1), the collapsed/kept ratio it predicts (pure MACs and with the CPU penalty table) against the
measured collapsed/kept forward-time ratio (one thread, this thread's CPU time: robust on a shared machine).
``--calibrate`` times single convolutions and fits the CPU penalty row (cost_model.PENALTIES). No assertions.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import archdsl
from archdsl.passes.collapse_linear import CollapseLinear
from archdsl.testing import compare_outputs, randomize
from benchmarks.simplify import interleaved

# name: (chain, input channels, spatial size)
TABLE = {
    "SESR expansion 16->256->16 (3x3, 1x1)": ("a: Conv2d(256, 3, padding=1, bias=false), b: Conv2d(16, 1, bias=false)",
                                              16, 96),
    "bottleneck 256->64->256 (1x1, 1x1)": ("a: Conv2d(64, 1), b: Conv2d(256, 1)", 256, 56),
    "two 3x3 convs (64 -> 64 -> 64)": ("a: Conv2d(64, 3, padding=1), b: Conv2d(64, 3)", 64, 56),
    "depthwise 3x3 + pointwise (128)": ("a: Conv2d(128, 3, padding=1, groups=128), b: Conv2d(128, 1)", 128, 56),
    "1x7 + 7x1 (64)": ("a: Conv2d(64, (1, 7)), b: Conv2d(64, (7, 1))", 64, 56),
}


def timed(a, b, x, repeat: int, budget: float = 0.2) -> tuple[float, float, float, list[float]]:
    """(median a ms, median b ms, median b/a, per-round b/a) with the forms interleaved; a round runs each form
    enough times to take about ``budget`` seconds (fast forwards are timed in loops, not one call)."""
    with torch.inference_mode():
        start = time.perf_counter()
        a(x), b(x)                                                   # warm up
        calls = max(1, int(budget / max(time.perf_counter() - start, 1e-6)))

        def loop(f):
            return lambda: [f(x) for _ in range(calls)]

        rounds = interleaved(loop(a), loop(b), repeat)
    ratios = [tb / ta for ta, tb in rounds]
    return (statistics.median(r[0] for r in rounds) * 1e3 / calls, statistics.median(r[1] for r in rounds) * 1e3 /
            calls, statistics.median(ratios), ratios)


def sesr(height: int, width: int, repeat: int) -> None:
    """SESR-M5 x2: the expanded training form against the collapsed deploy form (default deploy pipeline)."""
    graph = archdsl.compile("sesr_m5_x2")
    expanded = randomize(archdsl.build(graph), seed=0).eval()
    result = archdsl.simplify(graph, weights=expanded)
    collapsed = result.module()
    x = torch.randn(1, 1, height, width, generator=torch.Generator().manual_seed(0))
    (error,) = compare_outputs(expanded, collapsed, [x])
    e_ms, c_ms, ratio, ratios = timed(expanded, collapsed, x, repeat)
    before, after = result.report.total
    print(f"SESR-M5 x2 {height}x{width} -> {2 * height}x{2 * width}: expanded {e_ms:9.1f} ms, collapsed {c_ms:7.1f} ms, "
          f"speed-up {1 / ratio:.1f}x [{1 / max(ratios):.1f} .. {1 / min(ratios):.1f}], relative error {error:.1e}")
    print(f"    MACs at 224x224: {before.macs:,} -> {after.macs:,} (x{after.macs / before.macs:.3f}); "
          f"parameters {before.params:,} -> {after.params:,}")


def forward_macs(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass, as torch's FLOP counter sees them (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() // 2


def training(batch: int, size: int, repeat: int) -> None:
    """SESR-M5 x2 training step (forward, backward, SGD update): expanded vs collapse_train, same gradients."""
    from archdsl.passes.collapse_train import collapse_train

    model = randomize(archdsl.build("sesr_m5_x2"), seed=0).train()
    wrapped = collapse_train(model)
    crops = torch.randn(32, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    expanded_macs, collapsed_macs = forward_macs(model, crops), forward_macs(wrapped, crops)
    print(f"\nSESR-M5 x2 forward MACs, batch 32 of 64x64 crops: expanded {expanded_macs / 1e9:.2f} G, collapse-train "
          f"{collapsed_macs / 1e9:.2f} G (kernels computed from the expanded parameters included)")
    x = torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(1))
    target = torch.randn(batch, 1, 2 * size, 2 * size, generator=torch.Generator().manual_seed(2))
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-6)

    def step(module):
        def run():
            optimiser.zero_grad()
            torch.nn.functional.mse_loss(module(x), target).backward()
            optimiser.step()
        return run

    step(model)(), step(wrapped)()                                  # warm up
    rounds = interleaved(step(model), step(wrapped), repeat)
    ratios = [a / b for a, b in rounds]
    e_ms, c_ms = (statistics.median(r[i] for r in rounds) * 1e3 for i in (0, 1))
    print(f"SESR-M5 x2 training step, batch {batch} of {size}x{size}: expanded {e_ms:8.1f} ms, collapse-train "
          f"{c_ms:7.1f} ms, speed-up {statistics.median(ratios):.1f}x [{min(ratios):.1f} .. {max(ratios):.1f}]")


def cpu_time(module, x: torch.Tensor, rounds: int = 5, budget: float = 0.15) -> float:
    """Seconds of this thread's CPU time per call (best of ``rounds``); with one torch thread the work runs in
    this thread, so other processes on a shared machine barely move the figure (wall time does)."""
    with torch.inference_mode():
        module(x)
        start = time.thread_time()
        module(x)
        calls = max(1, int(budget / max(time.thread_time() - start, 1e-6)))
        best = float("inf")
        for _ in range(rounds):
            start = time.thread_time()
            for _ in range(calls):
                module(x)
            best = min(best, (time.thread_time() - start) / calls)
    return best


def table(repeat: int) -> None:
    """Predicted (cost model) vs measured collapsed/kept ratios for the issue's table (one thread, CPU time)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    print(f"\n{'chain (1 thread, CPU time)':<40} {'MACs':>7} {'cpu model':>10} {'measured':>9}  (collapsed / kept; > 1: "
          "keep)")
    for name, (chain, c, size) in TABLE.items():
        text = f"model M() {{\n  in x: [N, {c}, H, W]\n  out x |> seq{{{chain}}}\n}}\n"
        graph = archdsl.compile(text)
        eval_graph = graph.replace(mode="eval")
        predicted = {}
        for backend in ("macs", "cpu"):
            (decision,) = CollapseLinear(force=True, backend=backend, probe=size).decisions(eval_graph)
            predicted[backend] = decision.plan.cost / decision.plan.kept_cost
        kept = randomize(archdsl.build(graph), seed=0).eval()
        collapsed = archdsl.simplify(graph, weights=kept, passes=[CollapseLinear(force=True), "dce"]).module()
        x = torch.randn(1, c, size, size, generator=torch.Generator().manual_seed(0))
        measured = cpu_time(collapsed, x, repeat) / cpu_time(kept, x, repeat)
        default = CollapseLinear(probe=size).apply(eval_graph).changed
        agree = (predicted["cpu"] < 1) == (measured < 1)
        print(f"{name:<40} {predicted['macs']:7.3f} {predicted['cpu']:10.3f} {measured:9.3f}  "
              f"default: {'collapse' if default else 'keep'} ({'agrees' if agree else 'DISAGREES'} with measurement)")
    torch.set_num_threads(threads)


# single convolutions for --calibrate: (in, out, kernel, groups, size)
CALIBRATION = [(16, 256, 3, 1, 48), (256, 16, 1, 1, 48), (16, 16, 3, 1, 48), (256, 64, 1, 1, 28),
               (64, 256, 1, 1, 28), (256, 256, 1, 1, 28), (64, 64, 3, 1, 28), (64, 64, 5, 1, 28),
               (128, 128, 1, 1, 28), (128, 128, 3, 1, 28), (64, 64, 7, 1, 28), (128, 128, 3, 128, 28),
               (128, 128, 7, 128, 28), (128, 128, 9, 128, 28)]


def calibrate() -> None:
    """Fit the CPU row of cost_model.PENALTIES: time = a * MACs + b * elements over dense convs with 64 or more
    input channels (least squares),
    then each depthwise conv's time per MAC beyond its traffic, relative to a. Prints the fitted constants."""
    torch.set_num_threads(1)
    dense, depthwise = [], []
    print("\nconvolution (1 thread, CPU time)          ms      MMACs   ps/MAC")
    for c, o, k, g, size in CALIBRATION:
        conv = torch.nn.Conv2d(c, o, k, groups=g)
        x = torch.randn(1, c, size, size)
        y = conv(x)
        macs, elems = y.numel() * c // g * k * k, x.numel() + y.numel()
        sec = cpu_time(conv, x)
        if g > 1:
            depthwise.append((macs, elems, sec, k))
        elif c >= 64:                      # 16 input channels run at half speed: an outlier for the fit
            dense.append((macs, elems, sec, k))
        print(f"{c:>4}->{o:<4} {k}x{k} groups {g:<4} at {size}x{size} {sec * 1e3:9.3f} {macs / 1e6:9.2f} "
              f"{sec / macs * 1e12:8.1f}")
    a_mat = torch.tensor([[m, e] for m, e, _, _ in dense], dtype=torch.float64)
    t = torch.tensor([s for _, _, s, _ in dense], dtype=torch.float64)
    a, b = torch.linalg.lstsq(a_mat, t.unsqueeze(1)).solution.reshape(-1).tolist()
    print(f"dense: {a * 1e12:.1f} ps per MAC, {b * 1e9:.3f} ns per element = traffic {b / a:.1f} MAC-equivalents")
    for m, e, sec, k in depthwise:
        print(f"depthwise {k}x{k}: x{(sec - b * e) / m / a:.2f} per MAC")


def main() -> None:
    """Parse flags and run every measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="180x320 SESR input, fewer rounds")
    parser.add_argument("--repeat", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibrate", action="store_true", help="only fit the CPU penalty table (single convs)")
    args = parser.parse_args()
    if args.calibrate:
        calibrate()
        return
    torch.set_num_threads(args.threads)
    repeat = 2 if args.quick else args.repeat
    height, width = (180, 320) if args.quick else (360, 640)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, batch 1")
    sesr(height, width, repeat)
    training(8, 64, repeat)
    table(max(repeat, 4))


if __name__ == "__main__":
    main()
