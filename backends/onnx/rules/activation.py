"""Activations: single ONNX ops where one matches torch exactly, exact decompositions otherwise."""

from __future__ import annotations

import math

import onnx_ir as ir

from archdsl.backends.onnx.emitter import NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.ops import activation as A
from archdsl.ops.base import OpDef

# ops that are one attribute-free ONNX op
_UNARY: dict[type[OpDef], str] = {A.ReLU: "Relu", A.Sigmoid: "Sigmoid", A.Tanh: "Tanh", A.Mish: "Mish", A.Hardswish: "HardSwish"}


@lowering(*_UNARY)
def _unary(e: NodeEmitter, op: OpDef, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.op(_UNARY[type(op)], xs[0])


@lowering(A.ReLU6)
def _relu6(e: NodeEmitter, op: A.ReLU6, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    dtype = e.ins[0].dtype
    return e.op("Clip", xs[0], e.scalar(0.0, dtype), e.scalar(6.0, dtype))


@lowering(A.LeakyReLU)
def _leaky_relu(e: NodeEmitter, op: A.LeakyReLU, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.op("LeakyRelu", xs[0], alpha=float(op.negative_slope))


@lowering(A.ELU)
def _elu(e: NodeEmitter, op: A.ELU, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.op("Elu", xs[0], alpha=float(op.alpha))


@lowering(A.PReLU)
def _prelu(e: NodeEmitter, op: A.PReLU, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    slope = params["weight"]
    rank = e.ins[0].rank
    if op.num_parameters > 1 and rank > 2:       # [C] -> [C, 1, ..., 1] against [N, C, *spatial]
        slope = e.op("Unsqueeze", slope, e.i64(list(range(1, rank - 1))))
    return e.op("PRelu", xs[0], slope)


@lowering(A.GELU)
def _gelu(e: NodeEmitter, op: A.GELU, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    if e.opset >= 20:
        return e.op("Gelu", xs[0], approximate=op.approximate)
    x, dtype = xs[0], e.ins[0].dtype
    half_x = e.op("Mul", x, e.scalar(0.5, dtype))
    if op.approximate == "none":       # 0.5 x (1 + erf(x / sqrt 2))
        inner = e.op("Erf", e.op("Mul", x, e.scalar(1 / math.sqrt(2.0), dtype)))
    else:                              # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = e.op("Mul", e.op("Mul", x, x), x)
        poly = e.op("Add", x, e.op("Mul", cube, e.scalar(0.044715, dtype)))
        inner = e.op("Tanh", e.op("Mul", poly, e.scalar(math.sqrt(2.0 / math.pi), dtype)))
    return e.op("Mul", half_x, e.op("Add", inner, e.scalar(1.0, dtype)))


@lowering(A.SiLU)
def _silu(e: NodeEmitter, op: A.SiLU, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.op("Mul", xs[0], e.op("Sigmoid", xs[0]))


@lowering(A.Hardsigmoid)
def _hardsigmoid(e: NodeEmitter, op: A.Hardsigmoid, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.op("HardSigmoid", xs[0], alpha=1.0 / 6.0, beta=0.5)


@lowering(A.Softplus)
def _softplus(e: NodeEmitter, op: A.Softplus, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    # torch: x where beta * x > threshold, else log(1 + exp(beta * x)) / beta
    x, dtype = xs[0], e.ins[0].dtype
    bx = x if op.beta == 1 else e.op("Mul", x, e.scalar(op.beta, dtype))
    soft = e.op("Softplus", bx)
    if op.beta != 1:
        soft = e.op("Div", soft, e.scalar(op.beta, dtype))
    return e.op("Where", e.op("Greater", bx, e.scalar(op.threshold, dtype)), x, soft)


@lowering(A.LogSigmoid)
def _logsigmoid(e: NodeEmitter, op: A.LogSigmoid, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    # log(sigmoid(x)) = min(x, 0) - log(1 + exp(-|x|)), stable for large |x| (as torch computes it)
    x, dtype = xs[0], e.ins[0].dtype
    tail = e.op("Log", e.op("Add", e.op("Exp", e.op("Neg", e.op("Abs", x))), e.scalar(1.0, dtype)))
    return e.op("Sub", e.op("Min", x, e.scalar(0.0, dtype)), tail)


@lowering(A.Softmax, A.LogSoftmax)
def _softmax(e: NodeEmitter, op: A.Softmax, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return e.op("LogSoftmax" if isinstance(op, A.LogSoftmax) else "Softmax", xs[0], axis=op.dim)
