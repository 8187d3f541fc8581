"""Start-up cost of the command line and of a cold ``archdsl.zoo.build``, as ratios to baselines run here.

Run from the repository root: ``python -m benchmarks.startup`` (the CLI ratios), ``python -m benchmarks.startup
--zoo`` to add the cold builds against torchvision/timm constructors (run it where they are installed; models
without an installed reference are skipped), ``--models resnet50,shufflenet_v2_x1_0`` for a subset.

Every figure is the CPU time (user + system) of a fresh process, read with ``resource.getrusage`` of the
finished child; the commands of one comparison run interleaved (A B A B ...) and each ratio is the median of the
per-round ratios. Python writes bytecode caches first (one warm-up run of each command), as an installed
package has them. Targets (issue 15 §1): ``archdsl check resnet50`` <= 0.3x ``python -c "import torch"`` and
<= 1.1x ``archdsl check specs/resnet.arch -m resnet50``; ``archdsl --help`` <= 0.1x ``import torch``; a cold
``zoo.build(name)`` <= 1.5x the reference constructor, for every zoo model with a reference: the first call alone in
a fresh process, archdsl and torchvision (or timm) each imported after ``import torch`` (also shown: from the import
to the module). archdsl's first call is timed three ways (``--skip-cli`` leaves the CLI ratios out): with its
compile cache warm (:mod:`archdsl.compilecache`: any process after the first to build that model; the target), with
the cache off (``ARCHDSL_NO_CACHE=1``) and the first-ever call that fills it. The cache is a temporary folder
(``ARCHDSL_CACHE_DIR``), never the user's; a warm run that had to compile (another process edited archdsl's sources
between the two runs) is run again, so "warm cache" is always a hit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CLI = [PY, "-m", "archdsl.cli"]
IMPORT_TORCH = [PY, "-c", "import torch"]
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}   # as installed: .pyc files kept
# Constructor arguments that make the reference match the zoo spec (no auxiliary heads, no init warning).
REFERENCE_KWARGS = {"googlenet": {"aux_logits": False, "init_weights": False},
                    "inception_v3": {"aux_logits": False, "init_weights": False}}

# A cold build in a fresh interpreter after `import torch`: the library's import plus its first call, and the call
# alone; both in CPU seconds. The reference side imports torchvision or timm and calls its constructor.
BUILD_OURS = """
import sys, time, torch
t0 = time.process_time(); import archdsl; t1 = time.process_time()
archdsl.zoo.build({name!r}); t2 = time.process_time()
print(t2 - t0, t2 - t1, "archdsl.elaborate" in sys.modules)
"""
BUILD_REFERENCE = """
import time, torch, importlib
t0 = time.process_time(); source = importlib.import_module({source!r}); t1 = time.process_time()
if {source!r} == "timm":
    source.create_model({name!r}, pretrained=False)
else:
    source.models.get_model({name!r}, weights=None, **{kwargs!r})
t2 = time.process_time()
print(t2 - t0, t2 - t1)
"""


def child_cpu(cmd: list[str]) -> float:
    """User + system CPU seconds of one run of ``cmd`` (its output discarded; a failure raises)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compare(a: list[str], b: list[str], rounds: int) -> tuple[float, float, float]:
    """Median CPU seconds of ``a`` and ``b`` and the median of per-round ratios a/b, interleaved."""
    child_cpu(a), child_cpu(b)                     # warm-up: bytecode caches, file system cache
    pairs = [(child_cpu(a), child_cpu(b)) for _ in range(rounds)]
    return (statistics.median(x for x, _ in pairs), statistics.median(y for _, y in pairs),
            statistics.median(x / y for x, y in pairs))


def cli_rows(rounds: int) -> list[tuple[str, float, float, float, float]]:
    """(label, A seconds, B seconds, ratio, target) for the three CLI comparisons."""
    resnet = str(ROOT / "specs" / "resnet.arch")
    cases = [
        ("check resnet50 / import torch", [*CLI, "check", "resnet50"], IMPORT_TORCH, 0.3),
        ("check resnet50 / check resnet.arch -m resnet50", [*CLI, "check", "resnet50"],
         [*CLI, "check", resnet, "-m", "resnet50"], 1.1),
        ("--help / import torch", [*CLI, "--help"], IMPORT_TORCH, 0.1),
    ]
    return [(label, *compare(a, b, rounds), target) for label, a, b, target in cases]


def references(names: list[str]) -> dict[str, tuple[str, dict]]:
    """Zoo name -> (reference package, constructor kwargs) for the names torchvision or timm provides here."""
    probe = ("import json, importlib, sys\nout = {}\ntry:\n    import torchvision\n    tv = set(torchvision.models."
             "list_models())\nexcept ImportError:\n    tv = set()\ntry:\n    import timm\nexcept ImportError:\n    "
             "timm = None\nfor n in sys.argv[1:]:\n    if n in tv:\n        out[n] = 'torchvision'\n    elif timm is "
             "not None and timm.is_model(n):\n        out[n] = 'timm'\nprint(json.dumps(out))")
    found = json.loads(subprocess.run([PY, "-c", probe, *names], cwd=ROOT, env=ENV, capture_output=True, text=True,
                                      check=True).stdout)
    return {n: (src, REFERENCE_KWARGS.get(n, {})) for n, src in found.items()}


def timed(script: str, env: dict[str, str] | None = None, compiled: bool | None = None) -> tuple[float, float]:
    """The two CPU figures (import + first call, first call) a fresh interpreter running ``script`` prints.
    ``compiled``: whether archdsl's run must (True) or must not (False) have compiled the spec; a run that did
    otherwise raises _Recompiled (an archdsl source file changed between filling the cache and reading it)."""
    out = subprocess.run([PY, "-c", script], cwd=ROOT, env=env or ENV, capture_output=True, text=True, check=True)
    total, call, *flag = out.stdout.strip().splitlines()[-1].split()
    if compiled is not None and flag and (flag[0] == "True") != compiled:
        raise _Recompiled(flag[0])
    return float(total), float(call)


class _Recompiled(Exception):
    """A warm-cache run compiled (its entry went stale: the tree was edited meanwhile)."""


def warm_pair(script: str, env: dict[str, str], tries: int = 5) -> tuple[tuple[float, float], tuple[float, float]]:
    """(first-ever, warm cache) figures: a run into the empty cache ``env`` names, then one reading it; the pair is
    run again (in a new folder) when the second run had to compile (another process edited archdsl meanwhile)."""
    for i in range(tries):
        folder = f"{env['ARCHDSL_CACHE_DIR']}-{i}"
        fill = timed(script, {**env, "ARCHDSL_CACHE_DIR": folder}, compiled=True)
        try:
            return fill, timed(script, {**env, "ARCHDSL_CACHE_DIR": folder}, compiled=False)
        except _Recompiled:
            continue
    raise RuntimeError(f"the compile cache went stale in each of {tries} tries: archdsl's sources keep changing")


def zoo_rows(names: list[str], rounds: int, cache_root: Path):
    """Yield (model, reference seconds, {case: (seconds, ratio with imports, ratio of the calls alone)}), medians,
    for each name with an installed reference. Each round runs, in turn: archdsl's first call into an empty compile
    cache ("first-ever": it compiles and fills the cache), the same again with that cache warm ("warm cache": the
    case of every later process), with the cache off (``ARCHDSL_NO_CACHE=1``: compile every time), and the
    reference. The cache is a fresh folder each round (``ARCHDSL_CACHE_DIR``), so the user's is never touched and
    an edit of archdsl's sources between rounds cannot leave a stale entry."""
    for name, (source, kwargs) in references(names).items():
        ours = BUILD_OURS.format(name=name)
        ref = BUILD_REFERENCE.format(name=name, source=source, kwargs=kwargs)
        runs: dict[str, list[tuple[float, float]]] = {case: [] for case in CASES}
        refs: list[tuple[float, float]] = []
        for i in range(rounds):
            fill, warm = warm_pair(ours, {**ENV, "ARCHDSL_CACHE_DIR": str(cache_root / f"{name}-{i}")})
            runs["first-ever"].append(fill)
            runs["warm cache"].append(warm)
            runs["no cache"].append(timed(ours, {**ENV, "ARCHDSL_NO_CACHE": "1"}, compiled=True))
            refs.append(timed(ref))
        cases = {case: (statistics.median(a[1] for a in pairs),
                        statistics.median(a[0] / b[0] for a, b in zip(pairs, refs, strict=True)),
                        statistics.median(a[1] / b[1] for a, b in zip(pairs, refs, strict=True)))
                 for case, pairs in runs.items()}
        yield name, statistics.median(b[1] for b in refs), cases


CASES = ("warm cache", "no cache", "first-ever")


def main(argv: list[str] | None = None) -> int:
    """Print the ratios; exit 1 when one misses its target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per comparison (default 7)")
    parser.add_argument("--zoo", action="store_true", help="also time cold zoo builds against the references")
    parser.add_argument("--models", help="comma-separated zoo names for --zoo (default: every zoo model)")
    parser.add_argument("--zoo-rounds", type=int, default=3, help="rounds per zoo model (default 3)")
    parser.add_argument("--skip-cli", action="store_true", help="only the zoo builds (with --zoo)")
    args = parser.parse_args(argv)
    ok = True
    print(f"CPU seconds of fresh processes, medians of {args.rounds} interleaved rounds")
    for label, a, b, ratio, target in [] if args.skip_cli else cli_rows(args.rounds):
        ok &= ratio <= target
        print(f"{label:<50} {a:7.3f} s / {b:7.3f} s = {ratio:5.3f}x  (target <= {target}x)", flush=True)
    if args.zoo:
        import tempfile

        from archdsl import zoo

        names = [n for n in args.models.split(",") if n in zoo.names()] if args.models else zoo.names()
        print(f"\ncold zoo.build(name) vs the reference constructor in a fresh process after `import torch`, CPU "
              f"seconds, medians of {args.zoo_rounds} rounds: the first call alone (archdsl and torchvision/timm "
              f"imported; the target, <= 1.5x), and in brackets the import plus the first call. archdsl three ways: "
              f"with its compile cache warm (every process after the first), with the cache off (ARCHDSL_NO_CACHE=1), "
              f"and the first-ever call (compiles and fills the cache). Models without a reference here are skipped.",
              flush=True)
        with tempfile.TemporaryDirectory(prefix="archdsl-bench-cache-") as tmp:
            for name, ref, cases in zoo_rows(names, args.zoo_rounds, Path(tmp)):
                ok &= cases["warm cache"][2] <= 1.5
                shown = "; ".join(f"{case} {sec * 1e3:6.1f} ms {calls:5.2f}x ({whole:4.2f}x)"
                                  for case, (sec, whole, calls) in cases.items())
                print(f"{name:<22} reference {ref * 1e3:6.1f} ms | {shown}"
                      f"{'' if cases['warm cache'][2] <= 1.5 else '  warm >1.5x'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
