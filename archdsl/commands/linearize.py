"""``archdsl linearize FILE (--input x.safetensors | --random SEED) -o OUTDIR``: the linear interpreter at one input.

Freezes the network's nonlinear decisions at the input x (ReLU masks, max-pool argmaxes; local slopes for
smooth ops) so that f(x) = A(x) x + c(x), and writes: report.txt (the check |A x + c - f(x)|, how each op was
frozen, and for a classifier the split of the top logits into the input's part and the bias part), and PNG
images of rows of A (what an output reads from the input: row_*.png) and of the pixel-wise votes A[k] * x
(vote_*.png) for the top classes, or for an image-to-image net the row and the column (response_*.png) of the
centre pixel. Float64 throughout.
"""

from __future__ import annotations

import argparse
import struct
import zlib

from archdsl.api import compile
from archdsl.commands.common import add_spec_args, check_seed, parse_params, spec_source
from archdsl.errors import Diagnostic, UsageError

EPILOG = """examples:
  archdsl linearize resnet18 --random 0 --size H=64,W=64 -o lin_resnet18
  archdsl linearize sesr_m5_x2 --input lr.safetensors --weights sesr.safetensors -o lin_sesr"""
TOP = 3
KNOWN = ("report.txt", "row_centre.png", "response_centre.png", *(f"{kind}_top{i}.png" for kind in ("row", "vote")
                                                                  for i in range(TOP)))


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("linearize", help="the linear interpreter: f(x) = A(x) x + c(x) at one input",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_spec_args(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="X.safetensors", help="the input tensor (the file's only tensor, or 'x')")
    source.add_argument("--random", type=int, metavar="SEED", help="a random normal input with this seed")
    p.add_argument("--size", metavar="N=1,H=64,...", help="sizes of the random input's symbols (default N=1, 32)")
    p.add_argument("--weights", metavar="IN.safetensors", help="the model's weights (default: seeded init)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder to write (must not exist)")
    p.add_argument("--force", action="store_true", help="replace OUTDIR if it holds an earlier output")


def png(image) -> bytes:
    """A 2-d float tensor as an 8-bit grey PNG, scaled symmetrically: 0 is mid-grey, +-max|v| white/black."""
    import torch

    scale = float(image.abs().max()) or 1.0
    pixels = (image / scale * 127.5 + 127.5).clamp(0, 255).round().to(torch.uint8)
    h, w = pixels.shape
    raw = b"".join(b"\0" + bytes(row.tolist()) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _image(t):
    """A per-input tensor [1, C, *spatial] as one 2-d picture (channels summed; 1-d inputs as one row)."""
    t = t[0]
    t = t.sum(0) if t.dim() >= 2 else t
    return t.reshape(1, -1) if t.dim() == 1 else t.reshape(t.shape[0], -1)


def _read_tensor(path: str, what: str):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(path)
    except (OSError, SafetensorError, ValueError) as exc:
        raise UsageError(Diagnostic(f"cannot read {what} {path}: {str(exc).splitlines()[0] if str(exc) else exc}",
                                    hint="give a .safetensors file")) from None
    return tensors


def _input(args, graph):
    import torch

    if args.input is not None:
        tensors = _read_tensor(args.input, "--input")
        if len(tensors) != 1 and "x" not in tensors:
            raise UsageError(Diagnostic(f"--input {args.input} holds {len(tensors)} tensors and none is named 'x'"))
        return (tensors["x"] if "x" in tensors else next(iter(tensors.values()))).double()
    check_seed(args.random)
    from archdsl.analysis import parse_sizes, substitute

    (t,) = graph.inputs.values()
    sizes = {s: 1 if s in ("N", "B") else 32 for s in graph.symbols()} | parse_sizes(args.size)
    shape = []
    for d in t.shape:
        size = substitute(d, sizes)
        if not isinstance(size, int):
            raise UsageError(Diagnostic(f"the input size {size} is left unbound", hint="bind it with --size NAME=VALUE"))
        shape.append(size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(args.random % 2**63), dtype=torch.float64)


def run(args: argparse.Namespace) -> int:
    """Build, freeze at the input, write the report and images."""
    from archdsl.analysis.linearize import LinearInterpreter
    from archdsl.backends.torch.build import build_module
    from archdsl.ir.weights import Weights
    from archdsl.output import Content, write_output_dir

    graph = compile(spec_source(args.file), args.model, **parse_params(args.param))
    if len(graph.inputs) != 1:
        raise UsageError(Diagnostic(f"linearize needs a model with one input; {graph.name} has {len(graph.inputs)}",
                                    graph.span))
    x = _input(args, graph)
    module = build_module(graph, seed=0).double()
    if args.weights is not None:
        weights = Weights.of(_read_tensor(args.weights, "--weights"), graph)
        module.load_state_dict({k: v.double() for k, v in weights.items()})
    try:
        li = LinearInterpreter(module, graph, x)
    except RuntimeError as exc:                        # the input does not fit the model
        raise UsageError(Diagnostic(f"model {graph.name} cannot run on an input of shape {list(x.shape)}: "
                                    f"{str(exc).splitlines()[0]}", graph.span)) from None
    files: dict[str, Content] = {}
    lines = [li.describe(), ""]
    out = li.output
    if out.dim() == 2:                                 # a classifier: the top logits' votes and bias parts
        for rank, k in enumerate(out[0].argsort(descending=True)[:TOP].tolist()):
            votes, bias = li.votes((0, k))
            lines.append(f"top {rank}: class {k}: logit {out[0, k].item():.6g} = input part {votes.sum().item():.6g} "
                         f"+ bias part {bias:.6g}")
            files[f"row_top{rank}.png"] = png(_image(li.row((0, k))))
            files[f"vote_top{rank}.png"] = png(_image(votes))
    else:                                              # dense outputs: the centre pixel's row and column
        centre = (0, 0, *(s // 2 for s in out.shape[2:]))
        lines.append(f"output {list(centre)}: {out[centre].item():.6g} = input part "
                     f"{(li.row(centre) * x).sum().item():.6g} + bias part {li.bias[centre].item():.6g}")
        files["row_centre.png"] = png(_image(li.row(centre)))
        files["response_centre.png"] = png(_image(li.column((0, 0, *(s // 2 for s in x.shape[2:])))))
    files["report.txt"] = "\n".join(lines) + "\n"
    paths = write_output_dir(args.output, files, force=args.force, known=KNOWN)
    print(lines[0].splitlines()[0])
    for path in paths.values():
        print(f"  wrote {path}")
    return 0
