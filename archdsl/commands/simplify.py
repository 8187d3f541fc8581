"""``archdsl simplify FILE -o OUTDIR``: the deploy form of a model (re-param branches merged, BatchNorm folded).

Writes graph.json, model.py, weights.safetensors, the deploy spec deploy.arch (which `archdsl check` accepts)
and report.txt (or report.json with --format json). With --weights the deploy weights are computed from the
given training-form weights, so the deploy model computes what the training model computes in eval mode;
without it the rewrite is structural and weights.safetensors holds the deploy graph's seeded init.
"""

from __future__ import annotations

import argparse
import sys

from archdsl.api import compile
from archdsl.commands.common import add_spec_args, check_seed, parse_params, spec_source
from archdsl.errors import ArchError

EXAMPLES = """examples:
  archdsl simplify repvgg_a0 -o out/repvgg_deploy
  archdsl simplify specs/mobileone.arch -m mobileone_s0 --weights train.safetensors -o out/mobileone
  archdsl simplify my.arch --passes fold-bn,dce -o out/folded --format json"""


def _epilog() -> str:
    """Examples, then every pass with what it does and when it is exact (from the pass declarations)."""
    from archdsl.passes import PASSES, PIPELINES

    lines = [EXAMPLES, "", "pipelines: " + "; ".join(f"{k} = {', '.join(v)}" for k, v in PIPELINES.items()),
             "", "passes:"]
    for name, cls in PASSES.items():
        lines.append(f"  {name}: {cls.summary}")
        if cls.preconditions:
            lines.append(f"      exact when: {cls.preconditions}")
    return "\n".join(lines)

REPORTS = {"text": "report.txt", "json": "report.json"}
SPEC_FILE = "deploy.arch"


class _HelpWithPasses(argparse.Action):
    """``-h/--help`` that lists the passes: the epilog is built when help is shown, so that registering the
    command (every ``archdsl`` run, ``--help`` included) does not import the pass layer."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show this help message and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.epilog = _epilog()
        parser.print_help()
        parser.exit()


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("simplify", help="rewrite a model into its deploy form (merge re-param branches, fold BN)",
                       description=__doc__, add_help=False, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-h", "--help", action=_HelpWithPasses)
    add_spec_args(p)
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder to write (must not exist)")
    p.add_argument("--weights", metavar="IN.safetensors", help="training-form weights (weight mode)")
    p.add_argument("--passes", default="deploy", metavar="PIPELINE|P1,P2",
                   help="a pipeline name or comma-separated pass names (default: deploy)")
    p.add_argument("--seed", type=int, default=0, help="seed of the deploy init without --weights (default 0)")
    p.add_argument("--force", action="store_true", help="replace OUTDIR if it holds an earlier output")
    p.add_argument("--verify", action="store_true", help="verify the graph after every pass (always on in tests)")
    p.add_argument("--format", choices=tuple(REPORTS), default="text", help="report format (default: text)")


def run(args: argparse.Namespace) -> int:
    """Compile, simplify, write the deploy form, print the report."""
    from archdsl.backends.torch.build import build_module
    from archdsl.backends.torch.codegen import generate_source
    from archdsl.ir.to_spec import graph_to_spec
    from archdsl.output import Content, write_output_dir
    from archdsl.saving import GRAPH_FILE, MODEL_FILE, WEIGHTS_FILE, load_weights, weights_content
    from archdsl.simplifying import simplify

    check_seed(args.seed)
    graph = compile(spec_source(args.file), args.model, **parse_params(args.param))
    weights = load_weights(graph, args.weights) if args.weights else None
    result = simplify(graph, weights=weights, passes=args.passes, verify_each=args.verify)
    deploy = result.graph
    if result.weights is not None:
        state = result.weights.state_dict()
    else:
        state = build_module(deploy, seed=args.seed).state_dict()
    report = result.report
    rendered = report.to_json() if args.format == "json" else report.text()
    files: dict[str, Content] = {
        GRAPH_FILE: deploy.to_json(),
        MODEL_FILE: generate_source(deploy, source=f"{args.file} (deploy form)"),
        WEIGHTS_FILE: weights_content(state),
        REPORTS[args.format]: rendered,
    }
    try:
        files[SPEC_FILE] = graph_to_spec(deploy, source=str(args.file))
    except ArchError as exc:           # a structure the language cannot spell: the rest is still the deploy form
        print(f"note: {SPEC_FILE} not written: {exc.diagnostics[0].message}", file=sys.stderr)
    paths = write_output_dir(args.output, files, force=args.force, known=(*REPORTS.values(), SPEC_FILE))
    if args.format == "json":
        print(rendered)
        return 0
    print(report.summary(), end="")
    for path in paths.values():
        print(f"  wrote {path}")
    return 0
