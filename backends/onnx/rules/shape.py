"""Shape ops: Reshape/Expand with sizes copied or computed from the input's run-time shape, Transpose,
(Un)Squeeze, Concat, Split, Slice, Gather; identities return their input (no node)."""

from __future__ import annotations

import onnx_ir as ir

from archdsl.backends.onnx.emitter import INT64_MAX, NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.ops import shape as S


@lowering(S.Reshape)
def _reshape(e: NodeEmitter, op: S.Reshape, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.reshape(xs[0], e.ins[0], S.runtime_shape(op, op.shape, e.ins[0]))


@lowering(S.Expand)
def _expand(e: NodeEmitter, op: S.Expand, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    # ONNX Expand broadcasts: 1 keeps an axis, so -1 (keep) becomes 1
    dims = [1 if d == -1 else d for d in op.shape]
    return e.op("Expand", xs[0], e.sizes(dims, xs[0], e.ins[0]))


@lowering(S.ExpandAs)
def _expand_as(e: NodeEmitter, op: S.ExpandAs, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    rank = e.ins[0].rank
    axes = op.axes(rank)
    if len(axes) == rank:
        return e.op("Expand", xs[0], e.shape_of(xs[1]))
    pieces = [e.axis_size(xs[1], i) if i in axes else e.i64([1]) for i in range(rank)]
    return e.op("Expand", xs[0], e.op("Concat", *pieces, axis=0))


@lowering(S.Permute)
def _permute(e: NodeEmitter, op: S.Permute, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    rank = e.ins[0].rank
    return e.op("Transpose", xs[0], perm=[d % rank for d in op.dims])


@lowering(S.Transpose)
def _transpose(e: NodeEmitter, op: S.Transpose, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    rank = e.ins[0].rank
    perm = list(range(rank))
    a, b = op.dim0 % rank, op.dim1 % rank
    if a == b:
        return xs[0]
    perm[a], perm[b] = perm[b], perm[a]
    return e.op("Transpose", xs[0], perm=perm)


@lowering(S.Squeeze)
def _squeeze(e: NodeEmitter, op: S.Squeeze, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    axes = op.axes(e.ins[0])
    return e.op("Squeeze", xs[0], e.i64(list(axes))) if axes else xs[0]


@lowering(S.Unsqueeze)
def _unsqueeze(e: NodeEmitter, op: S.Unsqueeze, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.op("Unsqueeze", xs[0], e.i64([op.dim % (e.ins[0].rank + 1)]))


@lowering(S.Concat)
def _concat(e: NodeEmitter, op: S.Concat, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return xs[0] if len(xs) == 1 else e.op("Concat", *xs, axis=op.dim % e.ins[0].rank)


def _split(e: NodeEmitter, x: ir.Value, dim: int, sizes: list) -> tuple[ir.Value, ...] | ir.Value:
    """Pieces of ``sizes`` along ``dim``; equal symbolic pieces use Split's num_outputs."""
    if len(sizes) == 1:
        return (x,)
    axis = dim % e.ins[0].rank
    if all(isinstance(s, int) for s in sizes):
        return e.op("Split", x, e.i64(sizes), axis=axis, outputs=len(sizes))
    return e.op("Split", x, axis=axis, num_outputs=len(sizes), outputs=len(sizes))


@lowering(S.Split)
def _split_rule(e: NodeEmitter, op: S.Split, xs: list[ir.Value], params: dict[str, ir.Value]):
    return _split(e, xs[0], op.dim, op.sizes(e.ins[0]))


@lowering(S.Chunk)
def _chunk(e: NodeEmitter, op: S.Chunk, xs: list[ir.Value], params: dict[str, ir.Value]):
    return _split(e, xs[0], op.dim, op.sizes(e.ins[0]))


@lowering(S.Slice)
def _slice(e: NodeEmitter, op: S.Slice, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    start = e.sizes([0 if op.start is None else op.start], xs[0], e.ins[0])
    end = e.sizes([INT64_MAX if op.end is None else op.end], xs[0], e.ins[0])
    return e.op("Slice", xs[0], start, end, e.i64([op.dim % e.ins[0].rank]), e.i64([op.step]))


@lowering(S.Select)
def _select(e: NodeEmitter, op: S.Select, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.op("Gather", xs[0], e.i64(op.index), axis=op.dim % e.ins[0].rank)


@lowering(S.Identity)
def _identity(e: NodeEmitter, op: S.Identity, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return xs[0]
