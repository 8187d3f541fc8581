"""``archdsl build FILE -o OUTDIR``: compile, build with PyTorch init, and save model.py, weights and graph."""

from __future__ import annotations

import argparse

from archdsl.api import compile
from archdsl.cli import parse_params
from archdsl.commands.common import add_spec_args, check_seed, spec_source


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("build", help="build a model and save its source, weights and graph", description=__doc__)
    add_spec_args(p)
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder to write (must not exist)")
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed for the initial weights (default 0)")
    p.add_argument("--force", action="store_true", help="replace OUTDIR if it holds an earlier build")
    p.add_argument("--check-inputs", action="store_true",
                   help="make forward() check input shapes against the spec (error names the spec line)")


def run(args: argparse.Namespace) -> int:
    """Build and save; print what was written."""
    from archdsl.backends.torch.build import build_module
    from archdsl.saving import save_built

    check_seed(args.seed)
    graph = compile(spec_source(args.file), args.model, **parse_params(args.param))
    module = build_module(graph, seed=args.seed, check_inputs=args.check_inputs)
    paths = save_built(graph, module, args.output, force=args.force, source=args.file)
    params = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for b in module.buffers())
    print(f"built {graph.name} from {args.file}: {params:,} parameters, {buffers:,} buffer elements (seed {args.seed})")
    for path in paths.values():
        print(f"  wrote {path} ({path.stat().st_size:,} bytes)")
    print(f"  load with: archdsl.load_built({str(paths['graph.json'].parent)!r})")
    return 0
