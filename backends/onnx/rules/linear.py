"""Dense layers: Linear as Gemm (2-d input) or MatMul with the transposed weight; Bilinear as one Einsum."""

from __future__ import annotations

import onnx_ir as ir

from archdsl.backends.onnx.emitter import NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.ops.graph import GraphConv
from archdsl.ops.linear import Bilinear, Linear


@lowering(Linear)
def _linear(e: NodeEmitter, op: Linear, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    bias = params.get("bias")
    if e.ins[0].rank == 2:
        return e.op("Gemm", xs[0], params["weight"], bias, transB=1)
    y = e.op("MatMul", xs[0], e.op("Transpose", params["weight"], perm=[1, 0]))
    return e.op("Add", y, bias) if bias is not None else y


@lowering(Bilinear)
def _bilinear(e: NodeEmitter, op: Bilinear, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    # y[..., k] = sum_ij x1[..., i] W[k, i, j] x2[..., j] + b[k]
    y = e.op("Einsum", xs[0], params["weight"], xs[1], equation="...i,kij,...j->...k")
    return e.op("Add", y, params["bias"]) if "bias" in params else y


@lowering(GraphConv)
def _graph_conv(e: NodeEmitter, op: GraphConv, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    y = xs[1]
    for _ in range(op.hops):                       # S^k X, then Gemm with the transposed weight
        y = e.op("MatMul", xs[0], y)
    return e.op("Gemm", y, params["weight"], params.get("bias"), transB=1)
