"""Constructors (constant initialisers), buffers, index ops, comparisons, clamping, max/min/arg reductions.

Values computed from constructors alone become constants or nodes on constants (onnxruntime folds them); a
persistent buffer is the initialiser of its state_dict entry, a non-persistent one its computed value.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from archdsl.backends.onnx.emitter import DTYPES, INT64_MAX, NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.ops import compare as C
from archdsl.ops import construct as K
from archdsl.ops import index as X
from archdsl.ops.base import OpDef
from archdsl.ops.tensor import promote

_COMPARE = {C.Eq: "Equal", C.Lt: "Less", C.Le: "LessOrEqual", C.Gt: "Greater", C.Ge: "GreaterOrEqual"}


def _const(e: NodeEmitter, array: np.ndarray, dtype: str) -> ir.Value:
    """A constant of an IR dtype."""
    return e.emitter.const(np.asarray(array), DTYPES[dtype])


def _number(e: NodeEmitter, value: object, dtype: str) -> ir.Value:
    """A 0-d constant holding ``value`` in ``dtype`` (bools and ints kept exact)."""
    return _const(e, np.asarray(value), dtype)


@lowering(K.Arange)
def _arange(e: NodeEmitter, op: K.Arange, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    start, end = op.bounds()
    # torch computes float ranges as start + i * step in double precision, then rounds to the dtype
    values = start + np.arange(op.size(), dtype=np.float64) * op.step
    dtype = op.out_type().dtype
    return _const(e, values if dtype not in K.INT_DTYPES else np.arange(start, end, op.step), dtype)


@lowering(K.Zeros, K.Ones)
def _filled(e: NodeEmitter, op: K.Zeros, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return _const(e, np.full(op.shape, 1 if isinstance(op, K.Ones) else 0), op.dtype)


@lowering(K.Full)
def _full(e: NodeEmitter, op: K.Full, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return _const(e, np.full(op.shape, op.value), op.out_type().dtype)


@lowering(K.Eye)
def _eye(e: NodeEmitter, op: K.Eye, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return _const(e, np.eye(op.n, op.m or op.n), op.dtype)


@lowering(K.Buffer)
def _buffer(e: NodeEmitter, op: K.Buffer, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return params[""] if "" in params else xs[0]


@lowering(X.IndexSelect)
def _index_select(e: NodeEmitter, op: X.IndexSelect, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.op("Gather", xs[0], xs[1], axis=op.dim)


@lowering(X.Gather)
def _gather(e: NodeEmitter, op: X.Gather, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.op("GatherElements", xs[0], xs[1], axis=op.dim)


@lowering(X.Roll)
def _roll(e: NodeEmitter, op: X.Roll, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    # roll by s along an axis of size n: the last (s mod n) entries, then the others (sizes read at run time)
    x = xs[0]
    for shift, axis in zip(op.shift_list(), op.dim_list(), strict=True):
        n = e.axis_size(x, axis)
        cut = e.op("Sub", n, e.op("Mod", e.i64([shift]), n))
        tail = e.op("Slice", x, cut, e.i64([INT64_MAX]), e.i64([axis]))
        head = e.op("Slice", x, e.i64([0]), cut, e.i64([axis]))
        x = e.op("Concat", tail, head, axis=axis)
    return x


@lowering(X.Where)
def _where(e: NodeEmitter, op: X.Where, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    dtype = e.outs[0].dtype
    values = iter(xs[1:])
    chosen = [next(values) if v is None else _number(e, v, dtype) for v in (op.input, op.other)]
    return e.op("Where", xs[0], *chosen)


@lowering(X.Tril, X.Triu)
def _triangle(e: NodeEmitter, op: X.Triangle, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.op("Trilu", xs[0], e.i64(op.diagonal), upper=int(isinstance(op, X.Triu)))


@lowering(X.Cumsum)
def _cumsum(e: NodeEmitter, op: X.Cumsum, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    x = xs[0]
    if e.ins[0].dtype != e.outs[0].dtype:                        # int32 and bool sum to int64
        x = e.op("Cast", x, to=DTYPES[e.outs[0].dtype])
    return e.op("CumSum", x, e.i64(op.dim))


@lowering(X.RepeatInterleave)
def _repeat_interleave(e: NodeEmitter, op: X.RepeatInterleave, xs: list[ir.Value],
                       params: dict[str, ir.Value]) -> ir.Value:
    # [.., n, ..] -> [.., n, 1, ..] -> expand the new axis to `repeats` -> merge the two axes
    x, t = xs[0], e.ins[0]
    axis = op.dim
    if axis is None:
        x, axis = e.op("Reshape", x, e.i64([-1])), 0
    widened = e.op("Unsqueeze", x, e.i64([axis + 1]))
    rank = 1 if op.dim is None else t.rank
    shape = [1] * (rank + 1)
    shape[axis + 1] = op.repeats
    expanded = e.op("Expand", widened, e.i64(shape))
    return e.op("Reshape", expanded, e.sizes(list(e.outs[0].shape), xs[0], t))


@lowering(X.Einsum)
def _einsum(e: NodeEmitter, op: X.Einsum, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    terms, out = X.parse_equation(op.equation)
    equation = ",".join(terms).replace(".", "...") + "->" + out.replace(".", "...")
    return e.op("Einsum", *xs, equation=equation)


@lowering(C.Eq, C.Ne, C.Lt, C.Le, C.Gt, C.Ge)
def _compare(e: NodeEmitter, op: C.Compare, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    a, t = xs[0], e.ins[0]
    if op.value is None:
        dtype = promote(op, *e.ins)
        a, b = (x if u.dtype == dtype else e.op("Cast", x, to=DTYPES[dtype]) for x, u in zip(xs, e.ins, strict=True))
    elif t.dtype in K.INT_DTYPES and not isinstance(op.value, int):   # 3 > 2.5 compares as numbers, as in torch
        a, b = e.op("Cast", a, to=DTYPES["float64"]), _number(e, op.value, "float64")
    else:
        b = _number(e, op.value, t.dtype)
    if isinstance(op, C.Ne):
        return e.op("Not", e.op("Equal", a, b))
    return e.op(_COMPARE[type(op)], a, b)


@lowering(C.Abs)
def _abs(e: NodeEmitter, op: OpDef, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.op("Abs", xs[0])


@lowering(C.Clamp)
def _clamp(e: NodeEmitter, op: C.Clamp, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    dtype = e.ins[0].dtype
    low = None if op.min is None else _number(e, op.min, dtype)
    high = None if op.max is None else _number(e, op.max, dtype)
    if low is None:
        return e.op("Min", xs[0], high)
    return e.op("Clip", xs[0], low, high)


@lowering(C.Amax, C.Amin)
def _extreme(e: NodeEmitter, op: C.Amax, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    name = "ReduceMax" if isinstance(op, C.Amax) else "ReduceMin"
    return e.op(name, xs[0], e.i64(list(op.axes(e.ins[0].rank))), keepdims=op.keepdim)


@lowering(C.Argmax, C.Argmin)
def _arg(e: NodeEmitter, op: C.ArgReduce, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    name = "ArgMax" if isinstance(op, C.Argmax) else "ArgMin"
    if op.dim is not None:
        return e.op(name, xs[0], axis=op.dim, keepdims=op.keepdim)
    flat = e.op(name, e.op("Reshape", xs[0], e.i64([-1])), axis=0, keepdims=0)
    return e.op("Reshape", flat, e.i64([1] * e.ins[0].rank if op.keepdim else []))
