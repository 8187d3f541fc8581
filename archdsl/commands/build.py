"""``archdsl build FILE -o OUTDIR``: compile, build with PyTorch init, and save model.py, weights and graph."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from archdsl.api import compile
from archdsl.commands.common import add_spec_args, check_seed, parse_params, spec_source
from archdsl.errors import Diagnostic, ElaborationError, UsageError, collect_warnings


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("build", help="build a model and save its source, weights and graph", description=__doc__)
    add_spec_args(p)
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder to write (must not exist)")
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed for the initial weights (default 0)")
    p.add_argument("--force", action="store_true", help="replace OUTDIR if it holds an earlier build")
    p.add_argument("--strict", action="store_true", help="treat warnings (dead code) as errors")
    p.add_argument("--check-inputs", action="store_true",
                   help="make forward() check input shapes against the spec (error names the spec line)")
    p.add_argument("--collapse-train", action="store_true",
                   help="linear regions train as one convolution computed from the expanded parameters at each step "
                        "(SESR); same state_dict, outputs and gradients; archdsl.load_built(OUTDIR) keeps it")
    p.add_argument("--target", choices=("torch", "onnx"), default="torch",
                   help="torch: OUTDIR with model.py, weights, graph.json; onnx: -o model.onnx (as archdsl export)")
    p.add_argument("--weights", metavar="W", help="with --target onnx: a .safetensors file or built folder")
    p.add_argument("--opset", type=int, default=21, metavar="N", help="with --target onnx: opset 18 to 21")
    p.add_argument("--input", action="append", metavar="N=1,H=224,...",
                   help="with --target onnx: bind these symbolic sizes (the others stay dynamic dim_params)")
    p.add_argument("--dynamic", metavar="N,H,W",
                   help="with --target onnx: the sizes that must stay dynamic (the others need --input)")


def run(args: argparse.Namespace) -> int:
    """Build and save; print what was written."""
    if args.target == "onnx":
        if args.collapse_train:
            raise UsageError(Diagnostic("--collapse-train applies to --target torch (training in PyTorch)",
                                        hint="for a collapsed ONNX model: archdsl simplify FILE -o OUTDIR, then "
                                             "archdsl export OUTDIR/deploy.arch --weights OUTDIR -o model.onnx"))
        return _run_onnx(args)
    for flag in ("weights", "input", "dynamic"):
        if getattr(args, flag):
            raise UsageError(Diagnostic(f"--{flag} applies to --target onnx", hint="archdsl build FILE --target "
                                        "onnx -o model.onnx ..."))
    from archdsl.backends.torch.build import build_module
    from archdsl.saving import save_built

    check_seed(args.seed)
    graph = _compile_reporting_warnings(args)
    module = build_module(graph, seed=args.seed, check_inputs=args.check_inputs, label=args.file)
    code: str = module.archdsl_source  # type: ignore[assignment]   # model.py: this very source, not generated again
    notes = []
    if args.collapse_train:
        from archdsl.passes.collapse_train import collapse_train

        module = collapse_train(module)
        notes = [f"collapse-train: {len(module.regions)} linear region(s) train collapsed"
                 + ("" if module.regions else " (none is cheaper as one convolution; training runs expanded)")]
        notes += [f"  {line}" for line in module.describe()]
    paths = save_built(graph, module, args.output, force=args.force, source=args.file, code=code)
    params = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for b in module.buffers())
    print(f"built {graph.name} from {args.file}: {params:,} parameters, {buffers:,} buffer elements (seed {args.seed})")
    for line in notes:
        print(line)
    for path in paths.values():
        print(f"  wrote {path} ({path.stat().st_size:,} bytes)")
    print(f"  load with: archdsl.load_built({str(paths['graph.json'].parent)!r})")
    return 0


def _compile_reporting_warnings(args: argparse.Namespace):
    """Compile FILE, printing its warnings (dead code) on stderr; with ``--strict`` they are errors."""
    from archdsl.verify import diagnostics

    with collect_warnings() as elaborated:
        graph = compile(spec_source(args.file), args.model, **parse_params(args.param))
    sources = {k: v for w in elaborated for k, v in w.sources.items()}
    from archdsl.commands.check import covered

    found = [w.diagnostic for w in elaborated] + [d for d in diagnostics(graph)
                                                  if d.severity != "error" and not covered(d, elaborated)]
    if found and args.strict:
        raise ElaborationError([dataclasses.replace(d, severity="error") for d in found], sources)
    for d in found:
        print(d.render(sources), file=sys.stderr)
    return graph


def _run_onnx(args: argparse.Namespace) -> int:
    """``--target onnx``: the ONNX model file, exactly as ``archdsl export`` writes it."""
    from archdsl.analysis import parse_sizes
    from archdsl.commands import export

    if args.dynamic is not None:
        graph = compile(spec_source(args.file), args.model, **parse_params(args.param))
        dynamic = {s.strip() for s in args.dynamic.split(",") if s.strip()}
        bound = set(parse_sizes(args.input))
        unknown = sorted(dynamic - set(graph.symbols()))
        missing = [s for s in graph.symbols() if s not in dynamic and s not in bound]
        if unknown or missing:
            raise UsageError(Diagnostic(
                f"--dynamic names {', '.join(unknown)}, which {graph.name} does not have" if unknown else
                f"{', '.join(missing)} must stay dynamic or be given a size",
                hint=f"symbolic sizes of {graph.name}: {', '.join(graph.symbols()) or 'none'}; "
                     "bind the others with --input N=1,..."))
    ns = argparse.Namespace(file=args.file, model=args.model, param=args.param, output=args.output,
                            weights=args.weights, seed=args.seed, opset=args.opset, input=args.input, passes=None,
                            functions=False, external_data=False, force=args.force, check=False, parity=False)
    return export.run(ns)
