"""``archdsl export FILE -o model.onnx``: lower a spec directly to ONNX (no torch.onnx trace), checked, atomic.

Symbolic input dims (N, H, W, T) stay dynamic as dim_params unless bound with --input; value and initialiser
names are the spec's (layer1.0.conv1.weight). Weights: the seeded PyTorch init (as `archdsl build --seed`),
a .safetensors file, or a folder written by `archdsl build`. Eval-mode semantics (dropout is the identity,
BatchNorm uses its running statistics). Needs the onnx extra: pip install 'archdsl[onnx]'.
"""

from __future__ import annotations

import argparse

from archdsl.commands.common import add_spec_args, parse_params, spec_source
from archdsl.errors import Diagnostic, UsageError
from archdsl.exporting import onnx_backend

EPILOG = """examples:
  archdsl export resnet50 -o resnet50.onnx
  archdsl export resnet.arch -m ResNet18 -o r18.onnx --weights out/r18/weights.safetensors --opset 18
  archdsl export repvgg_a0 -o repvgg.onnx --passes deploy --parity
  archdsl export vit.arch --check"""


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("export", help="lower a spec to an ONNX model (checked by onnx.checker)",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_spec_args(p)
    p.add_argument("-o", "--output", metavar="FILE.onnx", help="model file to write (required unless --check)")
    p.add_argument("--weights", metavar="W", help="a .safetensors file or a built folder (default: seeded init)")
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed of the default init (default 0)")
    p.add_argument("--opset", type=int, default=21, metavar="N", help="ONNX opset, 18 to 21 (default 21)")
    p.add_argument("--input", action="append", metavar="N=1,H=224,...",
                   help="bind symbolic input sizes (the others stay dynamic)")
    p.add_argument("--passes", metavar="PIPELINE", help="run archdsl.passes first (e.g. deploy) and export the result")
    p.add_argument("--functions", action="store_true",
                   help="make each documented block instance an ONNX model-local function (Netron shows the blocks)")
    p.add_argument("--external-data", action="store_true",
                   help="store the weights in FILE.onnx.data (automatic above protobuf's 2 GB)")
    p.add_argument("--force", action="store_true", help="replace FILE.onnx if it exists")
    p.add_argument("--check", action="store_true",
                   help="only report the ops that cannot be lowered, with their locations (no weights, no file)")
    p.add_argument("--parity", action="store_true",
                   help="also run onnxruntime against the PyTorch backend on random inputs and report the error")


def run(args: argparse.Namespace) -> int:
    """Compile, (simplify,) lower, check, write; print what was written."""
    from archdsl.analysis import bind, parse_sizes
    from archdsl.api import compile

    backend = onnx_backend()
    backend.check_opset(args.opset)
    if not args.check and not args.output:
        raise UsageError(Diagnostic("give the model file to write with -o FILE.onnx (or --check to only check)"))
    graph = compile(spec_source(args.file), args.model, **parse_params(args.param))
    sizes = parse_sizes(args.input)
    if sizes:
        graph = bind(graph, sizes)
    if args.check:
        problems = backend.lowering_problems(graph, args.opset)
        if problems:
            raise backend.ExportError(list(problems))
        print(f"{args.file}: {graph.name}: every op lowers to ONNX opset {args.opset} ({len(graph.nodes)} nodes)")
        return 0
    model = backend.export_model(graph, args.weights, args.opset, args.seed, args.passes, args.functions)
    written = backend.save(model, args.output, external_data=args.external_data or None, force=args.force)
    nodes = len(model.graph)
    params = sum(v.const_value.size for v in model.graph.initializers.values() if v.const_value is not None)
    print(f"exported {graph.name} from {args.file}: opset {args.opset}, {nodes} nodes, {params:,} weight elements"
          + (f", {len(model.functions)} block functions" if args.functions else "")
          + (f", passes {args.passes}" if args.passes else ""))
    for path in written.files():
        print(f"  wrote {path} ({path.stat().st_size:,} bytes)")
    if args.parity:
        report = backend.onnx_parity(graph, weights=args.weights, seed=args.seed, opset=args.opset,
                                     passes=args.passes)
        print(report)
        return 0 if report.ok else 1
    return 0
