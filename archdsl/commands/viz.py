"""``archdsl viz FILE -o graph.svg``: draw a model with graphviz.

Boxes show each op with its key attributes (conv2d 3x3/2, 64), edges carry tensor shapes, and blocks
are drawn as clusters. With --depth K, blocks deeper than K path components collapse into one box and
runs of identical sibling blocks (layer1.0 .. layer1.2) fold into one box with a ×n badge.
A .dot output is plain text; .svg and .png need graphviz's `dot` program (apt-get install graphviz).
Without -o, the DOT text is printed.
"""

from __future__ import annotations

import argparse

from archdsl.analysis import bind, parse_sizes
from archdsl.api import compile
from archdsl.cli import parse_params
from archdsl.commands.common import add_spec_args, spec_source
from archdsl.commands.stats import add_size_args, check_depth
from archdsl.viz import render, to_dot

EPILOG = """examples:
  archdsl viz resnet.arch -o resnet.svg --depth 2
  archdsl viz resnet.arch -m ResNet18 -o resnet.png --input N=1,H=224,W=224
  archdsl viz mlp.arch | dot -Tpdf -o mlp.pdf"""


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("viz", help="draw a model as a graph (DOT, SVG or PNG)", description=__doc__,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_spec_args(p)
    p.add_argument("-o", "--output", metavar="PATH", help="output file: .svg, .png, .pdf or .dot (default: DOT to stdout)")
    add_size_args(p)
    p.add_argument("--html", metavar="PATH",
                   help="write an interactive, self-contained HTML page (expand blocks, hover, search)")


def run(args: argparse.Namespace) -> int:
    """Compile, bind sizes, draw."""
    check_depth(args.depth)
    sizes = parse_sizes(args.input)
    graph = bind(compile(spec_source(args.file), args.model, **parse_params(args.param)), sizes)
    if args.html:
        from archdsl.viewer import write_html

        pages = {"": graph}
        if getattr(args, "diff", False) or getattr(args, "passes", None):
            from archdsl.simplify import simplify

            passes = getattr(args, "passes", None) or "deploy"
            pages = {"training form": graph, f"deploy form ({passes})": simplify(graph, passes=passes).graph}
        write_html(pages if len(pages) > 1 else graph, args.html, args.depth or 2)
        if args.output is None:
            return 0
    if args.output is None:
        print(to_dot(graph, args.depth), end="")
    else:
        render(graph, args.output, args.depth)
    return 0
