"""Arithmetic and tensor plumbing: binary ops, Sum, tensor-scalar ops, MatMul, reductions, Flatten."""

from __future__ import annotations

import onnx_ir as ir

from archdsl.backends.onnx.emitter import DTYPES, NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.ops import tensor as T
from archdsl.ops.base import OpDef

_BINARY = {T.Add: "Add", T.Sub: "Sub", T.Mul: "Mul", T.Div: "Div", T.MatMul: "MatMul"}


@lowering(*_BINARY)
def _binary(e: NodeEmitter, op: OpDef, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    dtype = e.outs[0].dtype                # an integer tensor with a float one, or divided: computed in the result's
    args = [x if t.dtype == dtype else e.op("Cast", x, to=DTYPES[dtype]) for x, t in zip(xs, e.ins, strict=True)]
    return e.op(_BINARY[type(op)], *args)


@lowering(T.AddN)
def _add_n(e: NodeEmitter, op: T.AddN, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    if len(xs) == 1:
        return xs[0]
    if len(xs) == 2:
        return e.op("Add", *xs)
    return e.op("Sum", *xs)


@lowering(T.ScalarArith)
def _scalar(e: NodeEmitter, op: T.ScalarArith, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    x, dtype = xs[0], e.outs[0].dtype
    if e.ins[0].dtype != dtype:                   # an integer tensor divided (or scaled by a fraction): float
        x = e.op("Cast", x, to=DTYPES[dtype])
    c = e.scalar(op.value, dtype)
    forms = {"add": ("Add", x, c), "sub": ("Sub", x, c), "rsub": ("Sub", c, x), "mul": ("Mul", x, c),
             "div": ("Div", x, c), "rdiv": ("Div", c, x), "pow": ("Pow", x, c)}
    if op.fn == "neg":
        return e.op("Neg", x)
    name, a, b = forms[op.fn]
    return e.op(name, a, b)


@lowering(T.ReduceMean, T.ReduceSum)
def _reduce(e: NodeEmitter, op: T.Reduce, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    name = "ReduceMean" if isinstance(op, T.ReduceMean) else "ReduceSum"
    return e.op(name, xs[0], e.i64(list(op.axes(e.ins[0].rank))), keepdims=op.keepdim)


@lowering(T.Flatten)
def _flatten(e: NodeEmitter, op: T.Flatten, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    rank = e.ins[0].rank
    a, b = op.start_dim % rank, op.end_dim % rank
    if a == b:
        return xs[0]
    if a == 1 and b == rank - 1:      # ONNX Flatten makes [prod(before axis), prod(from axis)]
        return e.op("Flatten", xs[0], axis=1)
    dims = list(e.outs[0].shape)
    dims[a] = -1                      # the merged axis is inferred; the others are copied or computed
    return e.reshape(xs[0], e.ins[0], dims)
