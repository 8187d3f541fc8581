"""Resampling: Resize with torch's coordinate rules, DepthToSpace, exact pixel-unshuffle and channel-shuffle
decompositions (Reshape/Transpose), Pad."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from archdsl.backends.onnx.emitter import NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.backends.onnx.rules.common import pad
from archdsl.backends.onnx.rules.pool import adaptive_pool
from archdsl.ops.resample import ChannelShuffle, Pad, PixelShuffle, PixelUnshuffle, Upsample

# torch mode -> (ONNX mode, nearest_mode, coordinate transformation without align_corners)
_MODES = {"nearest": ("nearest", "floor", "asymmetric"), "nearest-exact": ("nearest", "round_prefer_ceil",
                                                                             "half_pixel"),
          "linear": ("linear", None, "half_pixel"), "bilinear": ("linear", None, "half_pixel"),
          "trilinear": ("linear", None, "half_pixel"), "bicubic": ("cubic", None, "half_pixel")}


@lowering(Upsample)
def _interpolate(e: NodeEmitter, op: Upsample, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    t = e.ins[0]
    n = t.rank - 2
    if op.mode == "area":      # torch's 'area' is adaptive average pooling to the output size
        return adaptive_pool(e, xs[0], t, list(e.outs[0].shape[2:]), 2, "Average")
    mode, nearest, transform = _MODES[op.mode]
    if op.align_corners:
        transform = "align_corners"
    axes = list(range(2, t.rank))
    if op.scale_factor is not None:     # torch maps coordinates with the given scale, as Resize does with scales
        scales = e.emitter.const(np.asarray(op.per_axis(op.scale_factor, n), dtype=np.float32))
        sizes = None
    else:
        scales, sizes = None, e.sizes(list(op.per_axis(op.size, n)), xs[0], t)
    return e.op("Resize", xs[0], None, scales, sizes, mode=mode, nearest_mode=nearest,
                coordinate_transformation_mode=transform, cubic_coeff_a=-0.75 if mode == "cubic" else None,
                axes=axes)


@lowering(PixelShuffle)
def _pixel_shuffle(e: NodeEmitter, op: PixelShuffle, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    x, t = xs[0], e.ins[0]
    r = op.upscale_factor
    if t.rank == 4:
        return e.op("DepthToSpace", x, blocksize=r, mode="CRD")
    *lead, c, h, w = t.shape
    flat = e.reshape(x, t, [-1, c, h, w])
    return e.op("Reshape", e.op("DepthToSpace", flat, blocksize=r, mode="CRD"), e.sizes(e.outs[0].shape, x, t))


@lowering(PixelUnshuffle)
def _pixel_unshuffle(e: NodeEmitter, op: PixelUnshuffle, xs: list[ir.Value],
                     params: dict[str, ir.Value]) -> ir.Value:
    # [*, C, H*r, W*r] -> [B, C, H, r, W, r] -> [B, C, r, r, H, W] -> [*, C*r*r, H, W] (torch's channel order;
    # SpaceToDepth orders the blocks first)
    x, t = xs[0], e.ins[0]
    r = op.downscale_factor
    *lead, c, h, w = t.shape
    split = e.reshape(x, t, [-1, c, h // r, r, w // r, r])
    moved = e.op("Transpose", split, perm=[0, 1, 3, 5, 2, 4])
    return e.op("Reshape", moved, e.sizes(e.outs[0].shape, x, t))


@lowering(ChannelShuffle)
def _channel_shuffle(e: NodeEmitter, op: ChannelShuffle, xs: list[ir.Value],
                     params: dict[str, ir.Value]) -> ir.Value:
    # [N, g*k, ...] -> [N, g, k, rest] -> [N, k, g, rest] -> the input's shape (ShuffleNet)
    x, t = xs[0], e.ins[0]
    c = t.shape[1]
    grouped = e.reshape(x, t, [t.shape[0], op.groups, c // op.groups, -1])
    return e.op("Reshape", e.op("Transpose", grouped, perm=[0, 2, 1, 3]), e.shape_of(x))


@lowering(Pad)
def _pad(e: NodeEmitter, op: Pad, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    t = e.ins[0]
    return pad(e, xs[0], t.rank, op.per_axis(t), op.mode, op.value, t.dtype)
