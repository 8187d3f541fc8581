"""``archdsl symmetries FILE``: the weight-space symmetry group of a model, derived from its ops' contracts.

Classes of hidden units that can be permuted (with the parameter and buffer axes that hold them), block
classes (groups, attention heads) whose blocks can be permuted as wholes, the scalings each class allows
(ReLU: positive, tanh: signs, a BatchNorm input: any nonzero factor), and what is pinned and why.
``--explain CLASS`` prints the chain of ops that created, tied, cut or pinned a class, with source lines;
``--check N`` draws N random group elements and prints how much each changes the outputs (float64).
"""

from __future__ import annotations

import argparse
import json

from archdsl.api import compile
from archdsl.commands.common import add_spec_args, parse_params, spec_source
from archdsl.errors import Diagnostic, UsageError

EPILOG = """examples:
  archdsl symmetries resnet18
  archdsl symmetries resnet50 --explain c1
  archdsl symmetries my.arch -m Net --format rebasin > perm_spec.json
  archdsl symmetries vit_b_16 --param image_size=32 --check 2"""

FORMATS = ("text", "json", "rebasin", "layers")


def add_parser(sub) -> None:
    """Register the command (also spelled ``archdsl symmetry``)."""
    p = sub.add_parser("symmetries", aliases=["symmetry"], help="derive the weight-space symmetry group of a model",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_spec_args(p)
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text (default), json, rebasin (Git Re-Basin PermutationSpec), layers (NFN/DWSNets style)")
    p.add_argument("--explain", metavar="CLASS", help="why class CLASS (c3, b0, p1) exists: its provenance chain")
    p.add_argument("--check", type=int, metavar="N", default=0,
                   help="apply N random group elements to random weights and print the output change")
    p.set_defaults(command="symmetry")          # the module name, whichever spelling was typed


def run(args: argparse.Namespace) -> int:
    """Compile, derive, print."""
    from archdsl.symmetry import derive
    from archdsl.symmetry.export import explain, layers, rebasin, text, to_json

    if args.check < 0 or args.check > 100:
        raise UsageError(Diagnostic(f"--check takes 0 to 100 elements, got {args.check}"))
    graph = compile(spec_source(args.file), args.model, **parse_params(args.param))
    spec = derive(graph)
    if args.explain:
        print(explain(spec, args.explain))
    elif args.format == "text":
        print(text(spec))
    else:
        view = {"json": to_json, "rebasin": rebasin, "layers": layers}[args.format](spec)
        print(json.dumps(view, indent=1))
    if args.check:
        from archdsl.symmetry.check import check

        errors = check(graph, spec, seeds=range(args.check))
        worst = max(errors)
        print(f"check: {len(errors)} random group elements, largest relative output change {worst:.2e} "
              f"({'ok' if worst < 1e-9 else 'NOT A SYMMETRY'})")
        return 0 if worst < 1e-9 else 1
    return 0
