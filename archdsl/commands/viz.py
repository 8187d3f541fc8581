"""``archdsl viz FILE -o graph.svg``: draw a model with graphviz.

Boxes show each op with its key attributes (conv2d 3x3/2, 64), edges carry tensor shapes, and blocks
are drawn as clusters. With --depth K, blocks deeper than K levels collapse into one box (a level is a
path component; a numbered list entry counts with its list, so layer1.0 is one level and
stages.1.blocks.0 two) and runs of identical sibling blocks (layer1.0 .. 2) fold into one box with a ×n badge.
A .dot output is plain text; .svg and .png need graphviz's `dot` program (apt-get install graphviz).
Without -o, the DOT text is printed.
"""

from __future__ import annotations

import argparse

from archdsl.api import compile
from archdsl.commands.common import add_spec_args, parse_params, spec_source
from archdsl.commands.stats import add_size_args, check_depth
from archdsl.errors import Diagnostic, UsageError

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
    p.add_argument("--diff", action="store_true",
                   help="draw the training form and the deploy form (archdsl simplify) side by side")
    p.add_argument("--passes", metavar="PIPELINE|P1,P2",
                   help="with --diff (implied): the passes giving the right-hand form (default: deploy)")


def run(args: argparse.Namespace) -> int:
    """Compile, bind sizes, draw."""
    from archdsl.analysis import bind, parse_sizes
    from archdsl.viz import render, to_dot

    check_depth(args.depth)
    sizes = parse_sizes(args.input)
    graph = bind(compile(spec_source(args.file), args.model, **parse_params(args.param)), sizes)
    if args.html:
        from archdsl.viewer import write_html

        pages = {"": graph}
        if args.diff or args.passes:
            from archdsl.simplifying import simplify

            passes = args.passes or "deploy"
            pages = {"training form": graph, f"deploy form ({passes})": simplify(graph, passes=passes).graph}
        write_html(pages if len(pages) > 1 else graph, args.html, args.depth or 2)
        if args.output is None:
            return 0
    if not (args.diff or args.passes):
        if args.output is None:
            print(to_dot(graph, args.depth), end="")
        else:
            render(graph, args.output, args.depth)
        return 0
    text = diff_dot(graph, args.passes or "deploy", args.depth)
    if args.output is None:
        print(text, end="")
    else:
        write_drawing(text, args.output)
    return 0


def diff_dot(graph, passes: str, depth: int | None) -> str:
    """Training form (left) and simplified form (right); the layers a pass produced are drawn bold and red."""
    from archdsl.simplifying import simplify
    from archdsl.viz import side_by_side

    result = simplify(graph, passes=passes)
    made = {c.into for c in result.result.changes if c.into}
    produced = [n for n in result.graph.nodes if n.module in made]
    marked = {f"g1/n:{n.name}" for n in produced}
    if depth is not None:                      # the folded block boxes that hold a produced layer
        marked |= {"g1/b:" + ".".join(n.module.split(".")[:depth]) for n in produced if n.module}
    text = side_by_side({"training form": graph, f"deploy form ({passes})": result.graph}, depth,
                        f"{graph.name}: {len(graph.nodes)} -> {len(result.graph.nodes)} ops")
    lines = []
    for line in text.splitlines():
        node_id = line.strip().split(" [", 1)[0].strip('"')
        if node_id in marked and line.rstrip().endswith("];"):
            line = line.rstrip()[:-2] + ', color="#d62728", penwidth=3];'
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_drawing(text: str, output: str) -> None:
    """DOT text to ``output`` (.dot as is; .svg/.png/.pdf laid out by graphviz's dot)."""
    from pathlib import Path

    from archdsl.viz import run_dot, write_atomic

    suffix = Path(output).suffix.lower().lstrip(".")
    if suffix not in ("dot", "gv", "svg", "png", "pdf"):
        raise UsageError(Diagnostic(f"cannot draw to {output!r}: use a .dot, .svg, .png or .pdf file name"))
    if not Path(output).parent.is_dir():
        raise UsageError(Diagnostic(f"cannot write {output!r}: folder {str(Path(output).parent)!r} does not exist"))
    write_atomic(output, text.encode() if suffix in ("dot", "gv") else run_dot(text, suffix))
