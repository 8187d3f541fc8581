"""archdsl simplify: deploy form against training form (forward speed-up and exactness), and pipeline time.

Run from the repository root: ``python -m benchmarks.simplify`` (``--quick`` for batch 2 at 112x112; ``--batch``,
``--size``, ``--repeat``, ``--threads`` to choose). Forward ratios are training / deploy (a speed-up), measured in
this process with the two forms interleaved (ABAB, then BABA) and reported as the median of per-round ratios.
The deploy weights are computed from random training weights with BatchNorm statistics far from (0, 1), and the
relative error of the deploy outputs is printed beside the speed-up. No assertions: it prints.

Targets: forward speed-up >= timm's own reparameterize speed-up on RepVGG-A0 (the issue measured 1.69x at
batch 8, 224x224, 2 threads), relative error <= 1e-6. Where timm is importable (the reference venv), timm's
training and deploy forms run in the same process, interleaved with ours, and the script prints both speed-ups
and our deploy time over timm's deploy time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import archdsl
from archdsl.testing import compare_outputs, randomize

TIMM_SPEEDUP = {"repvgg_a0": 1.69}
MAX_ERROR = 1e-6


def interleaved(a, b, repeat: int) -> list[tuple[float, float]]:
    """(a seconds, b seconds) per round, alternating which runs first."""
    rounds = []
    for i in range(repeat):
        times = {}
        for name, fn in ((("a", a), ("b", b)) if i % 2 == 0 else (("b", b), ("a", a))):
            start = time.perf_counter()
            fn()
            times[name] = time.perf_counter() - start
        rounds.append((times["a"], times["b"]))
    return rounds


def forward(name: str, batch: int, size: int, repeat: int) -> None:
    """Training form vs deploy form, same function, eval mode."""
    graph = archdsl.compile(name)
    train = randomize(archdsl.build(graph), seed=0).eval()
    deploy = archdsl.simplify(graph, weights=train).module()
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    (error,) = compare_outputs(train, deploy, [x])
    with torch.inference_mode():
        train(x), deploy(x)                                         # warm up
        rounds = interleaved(lambda: train(x), lambda: deploy(x), repeat)
    speedup = statistics.median(t / d for t, d in rounds)
    t_ms, d_ms = (statistics.median(r[i] for r in rounds) * 1e3 for i in (0, 1))
    target = TIMM_SPEEDUP.get(name)
    verdict = f", timm's speed-up {target:.2f}x: {'met' if speedup >= target else 'MISSED'}" if target else ""
    print(f"{name:>14} forward: training {t_ms:8.1f} ms, deploy {d_ms:8.1f} ms, speed-up {speedup:.2f}x "
          f"[{min(t / d for t, d in rounds):.2f} .. {max(t / d for t, d in rounds):.2f}], relative error "
          f"{error:.1e} ({'ok' if error <= MAX_ERROR else 'TOO LARGE'}){verdict}")


def against_timm(name: str, batch: int, size: int, repeat: int) -> None:
    """With timm importable: timm's own train/deploy speed-up and ours, and our deploy time over timm's."""
    try:
        import timm
        from timm.utils.model import reparameterize_model
    except ImportError:
        print(f"{name:>14} vs timm: timm is not installed here (run in the reference venv to compare)")
        return
    import copy

    ref = randomize(timm.create_model(name), seed=0).eval()
    ours = archdsl.build(name).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    with torch.no_grad():
        timm_deploy = reparameterize_model(copy.deepcopy(ref)).eval()
    forms = {"timm train": ref, "timm deploy": timm_deploy, "ours train": ours, "ours deploy": ours.reparameterize()}
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {k: [] for k in forms}
    with torch.inference_mode():
        for f in forms.values():
            f(x)
        for r in range(repeat):
            for k, f in (list(forms.items()) if r % 2 == 0 else list(reversed(forms.items()))):
                start = time.perf_counter()
                f(x)
                times[k].append(time.perf_counter() - start)
    m = {k: statistics.median(v) for k, v in times.items()}
    print(f"{name:>14} vs timm: timm speed-up {m['timm train'] / m['timm deploy']:.2f}x, ours "
          f"{m['ours train'] / m['ours deploy']:.2f}x; our deploy / timm's deploy {m['ours deploy'] / m['timm deploy']:.3f}x")


def pipeline(name: str, repeat: int) -> None:
    """Time of the deploy pipeline: structural (graph only) and weight mode (deploy weights computed)."""
    graph = archdsl.compile(name)
    weights = archdsl.Weights.of(archdsl.build(graph), graph)
    for mode, w in (("structural", None), ("weights", weights)):
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            archdsl.simplify(graph, weights=w)
            times.append(time.perf_counter() - start)
        print(f"{name:>14} deploy pipeline ({mode:>10}): {statistics.median(times) * 1e3:8.1f} ms "
              f"(min {min(times) * 1e3:.1f} ms, {len(graph.nodes)} nodes)")


def main() -> None:
    """Parse flags and run every measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 2 at 112x112, fewer rounds")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.batch, args.size, args.repeat = 2, 112, 4
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, {args.size}x{args.size}")
    for name in ("repvgg_a0", "mobileone_s0"):
        forward(name, args.batch, args.size, args.repeat)
        against_timm(name, args.batch, args.size, args.repeat)
    for name in ("resnet152", "repvgg_a0"):
        pipeline(name, 3 if args.quick else 5)


if __name__ == "__main__":
    main()
