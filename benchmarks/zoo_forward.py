"""Forward speed of every zoo model that has a torchvision or timm original, against that original.

Run from the repository root in an environment where torchvision and timm are installed (they are not
dependencies of archdsl; on the development machine that is the reference venv, where archdsl is installed
editable): ``/work/refvenv/bin/python -m benchmarks.zoo_forward``. Without torchvision the script says so and
exits 0 without measuring; without timm it measures the torchvision models only.

For each model both modules hold the same weights (the reference's state_dict loads into ours with strict=True)
and run the same input (batch 1 at 224x224 unless ``--batch``/``--size``), in eval mode under ``torch.no_grad``
(``--train``: a training step, forward and backward of the output's sum, in train mode). The two contenders are
interleaved (ABAB, then BABA) at each thread count in turn (1, then 2), and a model's ratio is the median of its
per-round ratios archdsl / reference; the median ratio of process CPU times is printed beside it (on a shared
machine compare the two: interference only adds time). No assertions: it prints a table and marks the models
above the goal by both ratios (a wall-clock spike that CPU time does not share is another process's doing).

Goal: every model <= 1.03x at 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import time

import torch

from archdsl import zoo

GOAL = 1.03
# Constructor arguments that make the reference match the zoo spec (no auxiliary heads, no init warning).
REFERENCE_KWARGS = {"googlenet": {"aux_logits": False, "init_weights": False},
                    "inception_v3": {"aux_logits": False, "init_weights": False}}


def _optional(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def references() -> dict[str, object]:
    """Zoo names -> a constructor of the original model, for every zoo model torchvision or timm provides."""
    tv, timm = _optional("torchvision"), _optional("timm")
    tv_names = set(tv.models.list_models()) if tv is not None else set()
    out = {}
    for name in zoo.names():
        if name in tv_names:
            out[name] = lambda n=name: tv.models.get_model(n, weights=None, **REFERENCE_KWARGS.get(n, {}))
        elif timm is not None and timm.is_model(name):
            out[name] = lambda n=name: timm.create_model(n, pretrained=False)
    return out


def inputs(graph, batch: int, size: int) -> tuple[torch.Tensor, ...]:
    """Random inputs of the graph's declared types: the leading symbolic dim is ``batch``, the others ``size``."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for t in graph.inputs.values():
        shape = [d if isinstance(d, int) else (batch if i == 0 else size) for i, d in enumerate(t.shape)]
        out.append(torch.randn(shape, generator=gen, dtype=getattr(torch, t.dtype)))
    return tuple(out)


def step(module: torch.nn.Module, x: tuple[torch.Tensor, ...], train: bool):
    """One timed call: an eval forward (the caller disables grad), or a training forward + backward."""
    if not train:
        return lambda: module(*x)

    def run():
        module.zero_grad(set_to_none=True)
        module(*x).sum().backward()
    return run


def interleaved(a, b, rounds: int) -> list[tuple[float, float, float, float]]:
    """Per-round wall seconds (a, b) and process CPU seconds (a, b), alternating which runs first."""
    out = []
    for i in range(rounds):
        times = {}
        for name, fn in (("a", a), ("b", b)) if i % 2 == 0 else (("b", b), ("a", a)):
            cpu, start = time.process_time(), time.perf_counter()
            fn()
            times[name] = (time.perf_counter() - start, time.process_time() - cpu)
        out.append((times["a"][0], times["b"][0], times["a"][1], times["b"][1]))
    return out


def measure(name: str, make_ref, args) -> dict:
    """Build both modules with the same weights, check the outputs agree, and time them at each thread count."""
    graph = zoo.compile(name)
    ref = make_ref()
    ours = zoo.build(name, seed=0)
    ours.load_state_dict(ref.state_dict(), strict=True)
    for m in (ours, ref):
        m.train(args.train)
    x = inputs(graph, args.batch, args.size)
    with torch.no_grad():
        diff = (ours(*x) - ref(*x)).abs().max().item() if not args.train else float("nan")
    row = {"name": name, "diff": diff}
    a, b = step(ours, x, args.train), step(ref, x, args.train)
    for threads in args.threads:
        torch.set_num_threads(threads)
        with torch.no_grad() if not args.train else torch.enable_grad():
            a(), b()                                       # warm-up (allocator, one-time kernels)
            times = interleaved(a, b, args.rounds)
            ratios = [r[0] / r[1] for r in times]
            row[threads] = (statistics.median(ratios), min(ratios), max(ratios),
                            statistics.median(r[0] for r in times), statistics.median(r[1] for r in times),
                            statistics.median(r[2] / r[3] for r in times))
    return row


def main(argv: list[str] | None = None) -> None:
    """Measure every zoo model with a reference (or ``--models``) and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", help="zoo names (default: every zoo model with a reference)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=224, help="spatial size of symbolic input dims")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds per model and thread count")
    p.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    p.add_argument("--train", action="store_true", help="time a training step (forward + backward)")
    args = p.parse_args(argv)
    if _optional("torchvision") is None:
        print("benchmarks/zoo_forward needs torchvision (and timm for the timm models) to run the originals; "
              "they are not archdsl dependencies. Install them beside archdsl, or on the development machine run "
              "/work/refvenv/bin/python -m benchmarks.zoo_forward. Nothing measured.")
        return
    refs = references()
    names = args.models or sorted(refs)
    missing = [n for n in names if n not in refs]
    if missing:
        print(f"no reference importable for: {', '.join(missing)} (skipped)")
    mode = "train step (fwd+bwd)" if args.train else "eval forward, no_grad"
    print(f"torch {torch.__version__}, {mode}, batch {args.batch}, size {args.size}, {args.rounds} interleaved "
          f"rounds, load average {os.getloadavg()[0]:.1f}; ratio = archdsl / reference (median [min .. max])")
    head = "".join(f" | {t} thread{'s' if t > 1 else ''}: ratio [spread], ms archdsl / ref, CPU ratio"
                   for t in args.threads)
    print(f"{'model':<22}{head} | max |diff|")
    over = []
    for name in names:
        if name not in refs:
            continue
        row = measure(name, refs[name], args)
        cells = "".join(f" | {r[0]:.3f}x [{r[1]:.2f} .. {r[2]:.2f}], {r[3] * 1e3:7.1f} / {r[4] * 1e3:7.1f}, {r[5]:.3f}x"
                        for r in (row[t] for t in args.threads))
        flag = any(row[t][0] > GOAL and row[t][5] > GOAL for t in args.threads)
        over += [name] if flag else []
        print(f"{name:<22}{cells} | {row['diff']:.1e}{'  > goal' if flag else ''}", flush=True)
    print(f"goal <= {GOAL}x at every thread count (wall or CPU-time median): "
          f"{'met' if not over else 'missed by ' + ', '.join(over)}")


if __name__ == "__main__":
    main()
