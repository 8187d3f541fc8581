"""``archdsl ir FILE -m NAME``: print the typed IR (text or JSON)."""

from __future__ import annotations

import argparse

from archdsl.api import compile
from archdsl.commands.common import add_spec_args, parse_params, spec_source


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("ir", help="print the typed IR of a model", description=__doc__)
    add_spec_args(p)
    p.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    """Print the graph."""
    from archdsl.ir.printer import print_graph

    graph = compile(spec_source(args.file), args.model, **parse_params(args.param))
    print(graph.to_json() if args.format == "json" else print_graph(graph))
    return 0
