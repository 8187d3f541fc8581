"""Convolutions: Conv and ConvTranspose with explicit per-side pads; non-zero padding modes as a Pad first."""

from __future__ import annotations

import onnx_ir as ir

from archdsl.backends.onnx.emitter import NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.backends.onnx.rules.common import pad
from archdsl.ops.conv import Conv1d, Conv2d, Conv3d, ConvNd, ConvTranspose2d


@lowering(Conv1d, Conv2d, Conv3d)
def _conv(e: NodeEmitter, op: ConvNd, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    k, s, d = op.geometry()
    pads = op.pads()
    x = xs[0]
    if op.padding_mode != "zeros" and any(a or b for a, b in pads):
        x = pad(e, x, e.ins[0].rank, pads, op.padding_mode)    # reflect / replicate / circular, then a valid conv
        pads = tuple((0, 0) for _ in pads)
    onnx_pads = [a for a, _ in pads] + [b for _, b in pads]
    return e.op("Conv", x, params["weight"], params.get("bias"), kernel_shape=k, strides=s, dilations=d,
                pads=onnx_pads, group=op.groups)


@lowering(ConvTranspose2d)
def _conv_transpose(e: NodeEmitter, op: ConvTranspose2d, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    k, s, d = op.geometry()
    pads = op.pads()
    out_pad = op.output_padding if isinstance(op.output_padding, tuple) else (op.output_padding,) * 2
    return e.op("ConvTranspose", xs[0], params["weight"], params.get("bias"), kernel_shape=k, strides=s,
                dilations=d, pads=[a for a, _ in pads] + [b for _, b in pads], group=op.groups,
                output_padding=list(out_pad))
