"""Regularisers in eval mode: dropout and stochastic depth are the identity (no node); LayerScale is a Mul."""

from __future__ import annotations

import onnx_ir as ir

from archdsl.backends.onnx.emitter import NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.backends.onnx.rules.common import channel_view
from archdsl.ops.regularize import Dropout, Dropout2d, LayerScale, StochasticDepth


@lowering(Dropout, Dropout2d, StochasticDepth)
def _eval_identity(e: NodeEmitter, op, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    return xs[0]


@lowering(LayerScale)
def _layer_scale(e: NodeEmitter, op: LayerScale, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    gamma = params["gamma"] if op.dim == -1 else channel_view(e, params["gamma"], e.ins[0].rank)
    return e.op("Mul", xs[0], gamma)
