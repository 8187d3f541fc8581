"""Pooling: MaxPool/AveragePool windows, adaptive pooling (one window op or exact per-axis bins), global pools."""

from __future__ import annotations

from collections.abc import Callable

import onnx_ir as ir

from archdsl.backends.onnx.emitter import NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.ir.types import TensorType
from archdsl.ops import pool as P
from archdsl.ops.conv import expand


def batched(e: NodeEmitter, x: ir.Value, spatial: int, body: Callable[[ir.Value], ir.Value]) -> ir.Value:
    """Apply a [N, C, *spatial] op to ``x``, adding (and removing) a batch axis for unbatched [C, *spatial]."""
    if e.ins[0].rank == spatial + 2:
        return body(x)
    axis = e.i64([0])
    return e.op("Squeeze", body(e.op("Unsqueeze", x, axis)), axis)


@lowering(P.MaxPool1d, P.MaxPool2d)
def _max_pool(e: NodeEmitter, op: P.MaxPoolNd, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    k, s, p, d = op.window()
    return batched(e, xs[0], op.spatial, lambda x: e.op(
        "MaxPool", x, kernel_shape=k, strides=s, pads=[*p, *p], dilations=d, ceil_mode=op.ceil_mode))


@lowering(P.AvgPool1d, P.AvgPool2d)
def _avg_pool(e: NodeEmitter, op: P.AvgPoolNd, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    k, s, p, _ = op.window()
    return batched(e, xs[0], op.spatial, lambda x: e.op(
        "AveragePool", x, kernel_shape=k, strides=s, pads=[*p, *p], ceil_mode=op.ceil_mode,
        count_include_pad=op.count_include_pad))


_ADAPTIVE = {P.AdaptiveAvgPool1d: "Average", P.AdaptiveAvgPool2d: "Average", P.AdaptiveMaxPool1d: "Max",
             P.AdaptiveMaxPool2d: "Max"}


@lowering(*_ADAPTIVE)
def _adaptive(e: NodeEmitter, op: P.AdaptivePoolNd, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    t = e.ins[0]
    lead = t.rank - op.spatial
    want = expand(op.output_size, op.spatial, "output_size", op.name)
    return adaptive_pool(e, xs[0], t, [None if o is None else o for o in want], lead, _ADAPTIVE[type(op)])


def adaptive_pool(e: NodeEmitter, x: ir.Value, t: TensorType, want: list[int | None], lead: int,
                  kind: str) -> ir.Value:
    """PyTorch's adaptive bins over axes ``lead..``: bin j of n over size L is [floor(jL/n), ceil((j+1)L/n))."""
    sizes = t.shape[lead:]
    todo = [(lead + i, o) for i, (o, size) in enumerate(zip(want, sizes, strict=True)) if o is not None and o != size]
    if not todo:
        return x
    ones = [axis for axis, n in todo if n == 1]
    if len(ones) == len(want) and t.rank == len(want) + 2:     # every spatial axis to 1: a global pool
        return e.op(f"Global{kind}Pool", x)
    if ones:                       # axes pooled to 1 are a reduction over the whole axis, for any size
        x = e.op("ReduceMean" if kind == "Average" else "ReduceMax", x, e.i64(ones), keepdims=1)
        todo = [(axis, n) for axis, n in todo if n != 1]
        if not todo:
            return x
        want = [None if lead + i in ones else o for i, o in enumerate(want)]
        sizes = tuple(1 if lead + i in ones else size for i, size in enumerate(sizes))
    if all(isinstance(size, int) and (o is None or size % o == 0) for o, size in zip(want, sizes, strict=True)):
        k = [size // (o or size) for o, size in zip(want, sizes, strict=True)]
        return batched(e, x, len(want), lambda v: e.op(f"{kind}Pool", v, kernel_shape=k, strides=k))
    reduce = "ReduceMean" if kind == "Average" else "ReduceMax"
    for axis, n in todo:       # separable: a mean (max) over a box is a mean (max) of per-axis means (maxes)
        size = t.shape[axis]
        bins = []
        for j in range(n):
            if isinstance(size, int):
                start, end = e.i64([j * size // n]), e.i64([-(-(j + 1) * size // n)])
            else:
                length = e.axis_size(x, axis)
                start = e.op("Div", e.op("Mul", length, e.i64([j])), e.i64([n]))
                end = e.op("Div", e.op("Add", e.op("Mul", length, e.i64([j + 1])), e.i64([n - 1])), e.i64([n]))
            piece = e.op("Slice", x, start, end, e.i64([axis]))
            bins.append(e.op(reduce, piece, e.i64([axis]), keepdims=1))
        x = bins[0] if n == 1 else e.op("Concat", *bins, axis=axis)
    return x


@lowering(P.GlobalAvgPool, P.GlobalMaxPool)
def _global(e: NodeEmitter, op: P.GlobalPool, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    reduce = "ReduceMean" if isinstance(op, P.GlobalAvgPool) else "ReduceMax"
    return e.op(reduce, xs[0], e.i64(list(op.axes(e.ins[0]))), keepdims=op.keepdim)
