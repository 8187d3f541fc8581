"""L_p normalisation (F.normalize) as ReduceL2 / ReduceL1 / ReduceMax or a Pow sum."""

from __future__ import annotations

import math

import onnx_ir as ir

from archdsl.backends.onnx.emitter import NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.ops.mixing import Normalize


@lowering(Normalize)
def _normalize(e: NodeEmitter, op: Normalize, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    x, t = xs[0], e.ins[0]
    axes = e.i64(list(op.axes(t.rank)))
    if op.p == 2:
        norm = e.op("ReduceL2", x, axes, keepdims=1)
    elif op.p == 1:
        norm = e.op("ReduceL1", x, axes, keepdims=1)
    elif math.isinf(op.p):
        norm = e.op("ReduceMax", e.op("Abs", x), axes, keepdims=1)
    else:
        powered = e.op("ReduceSum", e.op("Pow", e.op("Abs", x), e.scalar(op.p, t.dtype)), axes, keepdims=1)
        norm = e.op("Pow", powered, e.scalar(1.0 / op.p, t.dtype))
    return e.op("Div", x, e.op("Max", norm, e.scalar(op.eps, t.dtype)))
