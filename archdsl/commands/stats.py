"""``archdsl stats FILE``: parameters, output shapes and MACs per layer (or per block with --depth K).

Shapes stay symbolic (N, H, W) unless bound with --input; MAC totals are then formulas in those sizes.
Parameter totals equal sum(p.numel() for p in archdsl.build(...).parameters()); shared parameters count
once and buffers (BatchNorm running statistics) are reported separately.
"""

from __future__ import annotations

import argparse

from archdsl.analysis.report import FORMATS
from archdsl.api import compile
from archdsl.commands.common import add_spec_args, parse_params, spec_source
from archdsl.errors import Diagnostic, UsageError

EPILOG = """examples:
  archdsl stats resnet.arch --input N=1,H=224,W=224
  archdsl stats resnet.arch -m ResNet18 --depth 2 --input N=1,H=224,W=224
  archdsl stats vit.arch --param depth=4 --format json"""


def add_size_args(p: argparse.ArgumentParser) -> None:
    """--input N=1,H=224,W=224 and --depth K (shared with ``archdsl viz``)."""
    p.add_argument("--input", action="append", metavar="N=1,H=224,...",
                   help="bind symbolic input sizes (comma-separated, repeatable); unbound ones stay symbolic")
    p.add_argument("--depth", type=int, metavar="K",
                   help="group layers into blocks by their first K levels: a level is a module path component, and a "
                        "numbered list entry counts with its list (layer1.0 is one level, as stages.1.downsample is two)")


def check_depth(depth: int | None) -> None:
    """UsageError unless depth is None or at least 1."""
    if depth is not None and depth < 1:
        raise UsageError(Diagnostic(f"--depth must be at least 1, got {depth}"))


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("stats", help="parameters, shapes and MACs per layer or block", description=__doc__,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_spec_args(p)
    add_size_args(p)
    p.add_argument("--format", choices=tuple(FORMATS), default="text", help="output format (default: text)")


def run(args: argparse.Namespace) -> int:
    """Compile, bind sizes, count, print."""
    from archdsl.analysis import bind, parse_sizes, stats

    check_depth(args.depth)
    sizes = parse_sizes(args.input)
    graph = bind(compile(spec_source(args.file), args.model, **parse_params(args.param)), sizes)
    print(FORMATS[args.format](stats(graph, args.depth)))
    return 0
