"""Loading and building: ``archdsl.load_built`` against a meta-device load, ``archdsl build`` against torchvision.

Run from the repository root: ``python -m benchmarks.loading`` (``--models``, ``--rounds``, ``--threads``).

1. In process, interleaved (the order rotating every round), CPU time of this process, median of per-round
   ratios: ``load_built(DIR)`` against the cheapest load of the same module class, whose code is already
   imported: ``safetensors.torch.load_file`` + construction under ``torch.device("meta")`` +
   ``load_state_dict(assign=True)``. load_built figures: the first load of this graph.json in the process (its
   in-process memo cleared) three ways: "first, warm cache", with archdsl's compile cache holding these bytes (every
   process after the first to load them: the generated code and declarations are read from the cache, graph.json
   is hashed, not parsed or verified); "first, no cache" (``ARCHDSL_NO_CACHE=1``: read and verify graph.json,
   regenerate the module source); "first-ever", into an empty cache (verify, generate and fill the cache); and
   "again", a further load of the same graph.json bytes in the process (another checkpoint of the same model: graph
   and source reused, the weights read and checked as ever). The cache is a temporary folder, never the user's. The
   old path (construction with
   PyTorch's default init, then a copying ``load_state_dict``) is timed beside them. Goal: load_built <= 1.3x the
   meta-device load.
2. Whole processes, alternated: ``archdsl build resnet50 -o DIR`` against a script that constructs torchvision's
   resnet50 (seeded) and saves its state_dict with ``torch.save``; process CPU time (user + system of the child)
   and wall time, medians of per-pair ratios. Needs torchvision importable by this interpreter (on the
   development machine: /work/refvenv/bin/python -m benchmarks.loading); skipped with a note otherwise.
   Goal: <= 0.6x.
No assertions: it prints.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import archdsl
from archdsl import compilecache, saving
from archdsl.backends.torch.build import build_module, load_source
from archdsl.backends.torch.codegen import class_name
from archdsl.saving import WEIGHTS_FILE, load_built, save_built

TORCHVISION_SCRIPT = """\
import sys, torch, torchvision
torch.manual_seed(0)
model = torchvision.models.resnet50()
torch.save(model.state_dict(), sys.argv[1])
"""


def interleaved(fns: dict[str, object], rounds: int) -> dict[str, list[float]]:
    """CPU seconds per round for each callable, the order rotating every round."""
    names = list(fns)
    out: dict[str, list[float]] = {n: [] for n in names}
    for i in range(rounds):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order if i % 2 == 0 else reversed(order):
            start = time.process_time()
            fns[name]()
            out[name].append(time.process_time() - start)
    return out


def loading(name: str, rounds: int, folder: Path) -> None:
    """load_built vs a meta-device load vs init-then-copy, for one zoo model."""
    from safetensors.torch import load_file

    graph = archdsl.zoo.compile(name)
    module = build_module(graph, seed=0)
    save_built(graph, module, folder / name)
    cls = load_source(module.archdsl_source, class_name(graph))
    weights = folder / name / WEIGHTS_FILE

    def meta():
        state = load_file(str(weights))
        with torch.device("meta"):
            m = cls()
        m.load_state_dict(state, assign=True)

    def init_then_copy():
        state = load_file(str(weights))
        build_module(graph, seed=None).load_state_dict(state)

    fills = iter(range(10**9))

    def first(cache: str | None) -> None:
        saving._LOADED.clear()
        if cache is None:
            os.environ[compilecache.NO_CACHE_ENV] = "1"
        else:
            os.environ[compilecache.CACHE_DIR_ENV] = cache.format(next(fills))
        try:
            load_built(folder / name)
        finally:
            os.environ.pop(compilecache.NO_CACHE_ENV, None)
            os.environ[compilecache.CACHE_DIR_ENV] = str(folder / "cache")

    fns = {"first, warm cache": lambda: first(str(folder / "cache")), "first, no cache": lambda: first(None),
           "first-ever": lambda: first(str(folder / "fill-{}")), "again": lambda: load_built(folder / name),
           "meta": meta, "init+copy": init_then_copy}
    for fn in fns.values():
        fn()
    times = interleaved(fns, rounds)
    ratio = {k: statistics.median(a / b for a, b in zip(times[k], times["meta"], strict=True)) for k in fns}
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    shown = ", ".join(f"{k} {ms[k]:6.1f} ms {ratio[k]:.2f}x" for k in fns if k not in ("meta", "init+copy"))
    print(f"{name:<16} load_built: {shown} | meta-device load {ms['meta']:6.1f} ms | init+copy "
          f"{ms['init+copy']:6.1f} ms {ratio['init+copy']:.2f}x  (ratios to the meta-device load; goal <= 1.3)",
          flush=True)


def child(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def building(rounds: int, folder: Path) -> None:
    """`archdsl build resnet50 -o DIR` vs torchvision's construct-and-save, as whole processes."""
    if importlib.util.find_spec("torchvision") is None:
        print("build vs torchvision: skipped (torchvision is not importable here; on the development machine run "
              "/work/refvenv/bin/python -m benchmarks.loading)")
        return
    script = folder / "torchvision_save.py"
    script.write_text(TORCHVISION_SCRIPT)
    ours = [sys.executable, "-m", "archdsl.cli", "build", "resnet50", "-o", str(folder / "built"), "--force"]
    theirs = [sys.executable, str(script), str(folder / "resnet50.pt")]
    child(ours), child(theirs)                                     # warm the page cache
    pairs = []
    for i in range(rounds):
        a, b = (child(ours), child(theirs)) if i % 2 == 0 else reversed((child(theirs), child(ours)))
        pairs.append((a, b))
    wall = statistics.median(a[0] / b[0] for a, b in pairs)
    cpu = statistics.median(a[1] / b[1] for a, b in pairs)
    print(f"build resnet50 -o DIR: archdsl {statistics.median(a[1] for a, _ in pairs):.2f} s CPU, torchvision "
          f"construct+save {statistics.median(b[1] for _, b in pairs):.2f} s CPU: CPU ratio {cpu:.2f}x, wall ratio "
          f"{wall:.2f}x (goal <= 0.6), {rounds} pairs")


def main(argv: list[str] | None = None) -> None:
    """Run both comparisons."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=["resnet50", "efficientnet_b0", "vit_b_16"])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-build", action="store_true", help="only the in-process loading comparison")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[compilecache.CACHE_DIR_ENV] = str(Path(tmp) / "cache")
        for name in args.models:
            loading(name, args.rounds, Path(tmp))
        if not args.skip_build:
            building(max(3, args.rounds // 2), Path(tmp))


if __name__ == "__main__":
    main()
