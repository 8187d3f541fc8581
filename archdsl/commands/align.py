"""``archdsl align A.safetensors B.safetensors --spec FILE -o B_aligned.safetensors``: weight matching.

Permutes B's hidden units (within the classes ``archdsl symmetries`` derives for the spec's model) to match
A's, with Git Re-Basin's weight-matching algorithm; B's function is unchanged. ``--interpolate K`` also
prints how far the outputs of (1-t) A + t B_aligned are from A's and B's at K points t in (0, 1), on random
float64 inputs, next to the same for the unaligned B (the linear mode connectivity view).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from archdsl.api import compile
from archdsl.commands.common import parse_params, spec_source
from archdsl.errors import Diagnostic, UsageError

EPILOG = """examples:
  archdsl align a.safetensors b.safetensors --spec resnet18 -o b_aligned.safetensors
  archdsl align a.safetensors b.safetensors --spec my.arch -m Net -o b_aligned.safetensors --interpolate 5"""


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("align", help="permute one checkpoint's hidden units to match another's (weight matching)",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A.safetensors", help="the reference weights")
    p.add_argument("b", metavar="B.safetensors", help="the weights to permute")
    p.add_argument("--spec", required=True, metavar="FILE", help="the .arch/.yaml spec (or zoo model) of both")
    p.add_argument("-m", "--model", help="model to use (default: the only model in the file)")
    p.add_argument("--param", action="append", metavar="K=V", help="override a model parameter (repeatable)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.safetensors", help="where to write aligned B")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--seed", type=int, default=0, help="seed of the class order (default 0)")
    p.add_argument("--interpolate", type=int, default=0, metavar="K", help="report K interpolation points")


def run(args: argparse.Namespace) -> int:
    """Load, match, write, report."""
    import numpy as np
    from safetensors.torch import save

    from archdsl.output import write_file
    from archdsl.saving import load_weights
    from archdsl.symmetry import derive
    from archdsl.symmetry.canon import align

    out = Path(args.output)
    if os.path.lexists(out) and not args.force:     # early, before the work; write_file decides atomically
        raise UsageError(Diagnostic(f"{out} already exists", hint="pass --force to replace it"))
    if not 0 <= args.interpolate <= 100:
        raise UsageError(Diagnostic(f"--interpolate takes 0 to 100 points, got {args.interpolate}"))
    graph = compile(spec_source(args.spec), args.model, **parse_params(args.param))
    a, b = load_weights(graph, args.a), load_weights(graph, args.b)
    spec = derive(graph)
    g, aligned = align(spec, a, b, seed=args.seed)
    moved = sum(int((p != np.arange(len(p))).sum()) for p in g.perms.values())
    write_file(out, save({k: v.contiguous() for k, v in aligned.items()}), exclusive=not args.force)
    print(f"aligned {args.b} to {args.a}: {moved} hidden units moved in {len(g.perms)} classes; wrote {out}")
    if args.interpolate:
        _report(graph, a, b, aligned, args.interpolate)
    return 0


def _report(graph, a: dict, b: dict, aligned: dict, k: int) -> None:
    from archdsl.symmetry.canon import interpolate
    from archdsl.symmetry.check import Harness, relative_error

    h = Harness.build(graph)
    double = {name: {key: t.double() if t.is_floating_point() else t for key, t in s.items()}
              for name, s in (("a", a), ("b", b), ("aligned", aligned))}
    ends = h.run(double["a"]), h.run(double["b"])
    print("     t   naive: err vs A, vs B   aligned: err vs A, vs B")
    for i in range(1, k + 1):
        t = i / (k + 1)
        naive = h.run(interpolate(double["a"], double["b"], t))
        matched = h.run(interpolate(double["a"], double["aligned"], t))
        print(f"  {t:.3f}   {relative_error(ends[0], naive):.3e}  {relative_error(ends[1], naive):.3e}"
              f"   {relative_error(ends[0], matched):.3e}  {relative_error(ends[1], matched):.3e}")
