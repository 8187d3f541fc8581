"""Lowerings of shape ops; symbolic sizes become expressions over the input's run-time shape."""

from __future__ import annotations

import ast

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import bound_symbol, fn
from archdsl.ir.dims import Dim
from archdsl.ir.types import TensorType
from archdsl.ops import shape as S


def dim_source(d: Dim, x: str, t: TensorType) -> str:
    """Source computing size ``d`` from ``x``'s shape (``x.shape[2] * x.shape[3]`` for ``H*W``); -1 stays.

    A symbol that is no axis of ``x`` is read from the local the generated ``forward`` binds from its inputs.
    """
    if isinstance(d, int):
        return repr(d)
    if d in t.shape:
        return f"{x}.shape[{t.shape.index(d)}]"
    axes = S.symbol_axes(t)
    tree = ast.parse(str(d), mode="eval")

    class _Sub(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            if node.id in axes:
                return ast.parse(f"{x}.shape[{axes[node.id]}]", mode="eval").body
            return ast.Name(bound_symbol(node.id), ast.Load())   # bound at the top of forward

    return ast.unparse(_Sub().visit(tree))


def sizes_source(sizes: tuple[Dim, ...], x: str, t: TensorType) -> str:
    """A tuple literal of sizes."""
    items = [dim_source(d, x, t) for d in sizes]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


@lowering(S.Reshape)
def _reshape(op: S.Reshape, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{args[0]}.reshape{sizes_source(S.runtime_shape(op, op.shape, ins[0]), args[0], ins[0])}"


@lowering(S.Expand)
def _expand(op: S.Expand, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{args[0]}.expand{sizes_source(op.shape, args[0], ins[0])}"


@lowering(S.ExpandAs)
def _expand_as(op: S.ExpandAs, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    axes = op.axes(ins[0].rank)
    sizes = [f"{args[1]}.shape[{i}]" if i in axes else "-1" for i in range(ins[0].rank)]
    return f"{args[0]}.expand({', '.join(sizes)})"


@lowering(S.Permute)
def _permute(op: S.Permute, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{args[0]}.permute{tuple(op.dims)!r}"


@lowering(S.Transpose)
def _transpose(op: S.Transpose, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{args[0]}.transpose({op.dim0}, {op.dim1})"


@lowering(S.Squeeze)
def _squeeze(op: S.Squeeze, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    axes = op.axes(ins[0])
    return f"{args[0]}.squeeze({axes!r})" if axes else args[0]


@lowering(S.Unsqueeze)
def _unsqueeze(op: S.Unsqueeze, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{args[0]}.unsqueeze({op.dim})"


@lowering(S.Concat)
def _concat(op: S.Concat, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("torch.cat", "[" + ", ".join(args) + "]", dim=op.dim)


@lowering(S.Split)
def _split(op: S.Split, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    size = op.split_size_or_sections
    expr = fn("torch.split", args[0], repr(size if isinstance(size, int) else list(size)), dim=op.dim)
    return expr if len(op.sizes(ins[0])) > 1 else f"{expr}[0]"


@lowering(S.Chunk)
def _chunk(op: S.Chunk, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    expr = fn("torch.chunk", args[0], repr(op.chunks), dim=op.dim)
    return expr if len(op.sizes(ins[0])) > 1 else f"{expr}[0]"


@lowering(S.Slice)
def _slice(op: S.Slice, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    axis = op.dim % ins[0].rank
    start = "" if op.start is None else dim_source(op.start, args[0], ins[0])
    end = "" if op.end is None else dim_source(op.end, args[0], ins[0])
    step = "" if op.step == 1 else f":{op.step}"
    return f"{args[0]}[{':, ' * axis}{start}:{end}{step}]"


@lowering(S.Select)
def _select(op: S.Select, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{args[0]}.select({op.dim}, {op.index})"


@lowering(S.Identity)
def _identity(op: S.Identity, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return args[0]
