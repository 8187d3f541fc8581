"""``archdsl check FILE...``: parse, elaborate and verify; print diagnostics like a compiler."""

from __future__ import annotations

import argparse
import json
import sys

from archdsl.api import compile, compile_all
from archdsl.cli import parse_params
from archdsl.commands.common import add_spec_args
from archdsl.errors import ArchError


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("check", help="check specs for errors", description=__doc__)
    add_spec_args(p, many=True)
    p.add_argument("--format", choices=("text", "json"), default="text", help="diagnostics format")


def run(args: argparse.Namespace) -> int:
    """Check each file; exit 1 if any has errors."""
    params = parse_params(args.param)
    failed = False
    report = []
    for path in args.files:
        try:
            graphs = {args.model: compile(path, args.model, **params)} if args.model else compile_all(path, **params)
            for name, g in graphs.items():
                report.append({"file": path, "model": name, "ok": True, "nodes": len(g.nodes),
                               "params": g.num_params()})
                if args.format == "text":
                    print(f"{path}: {name}: ok ({len(g.nodes)} nodes, {g.num_params():,} parameters)")
        except ArchError as exc:
            failed = True
            report.append({"file": path, "ok": False, "diagnostics": json.loads(exc.to_json())["diagnostics"]})
            if args.format == "text":
                print(exc.render(), file=sys.stderr)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    return 1 if failed else 0
