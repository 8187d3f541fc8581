"""Normalisation layers in eval-mode semantics (running statistics where the layer tracks them)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from archdsl.backends.onnx.emitter import NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.backends.onnx.rules.common import affine, channel_view, normalize_over
from archdsl.ops.norm import (
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    BatchNormNd,
    ChannelStatsNorm,
    GroupNorm,
    InstanceNorm2d,
    LayerNorm,
    LayerNorm2d,
    LocalResponseNorm,
    RMSNorm,
    channels,
)

_FINFO_EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps),
              "float16": float(np.finfo(np.float16).eps), "bfloat16": 2.0**-7}


def _running(e: NodeEmitter, op: ChannelStatsNorm, x: ir.Value, params: dict[str, ir.Value]) -> ir.Value:
    """BatchNormalization with the running statistics (eval mode); ones/zeros when there is no affine."""
    c, dtype = channels(op, e.ins[0]), e.ins[0].dtype
    scale = params.get("weight") or e.full((c,), 1.0, dtype)
    bias = params.get("bias") or e.full((c,), 0.0, dtype)
    return e.op("BatchNormalization", x, scale, bias, params["running_mean"], params["running_var"],
                epsilon=float(op.eps))


@lowering(BatchNorm1d, BatchNorm2d, BatchNorm3d)
def _batch_norm(e: NodeEmitter, op: BatchNormNd, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    if op.track_running_stats:
        return _running(e, op, xs[0], params)
    # no running statistics: batch statistics in eval mode too (as nn.BatchNorm)
    rank, dtype = e.ins[0].rank, e.ins[0].dtype
    y = normalize_over(e, xs[0], [0, *range(2, rank)], op.eps, dtype)
    w, b = params.get("weight"), params.get("bias")
    return affine(e, y, w and channel_view(e, w, rank), b and channel_view(e, b, rank))


@lowering(InstanceNorm2d)
def _instance_norm(e: NodeEmitter, op: InstanceNorm2d, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    if op.track_running_stats:
        return _running(e, op, xs[0], params)
    c, dtype = channels(op, e.ins[0]), e.ins[0].dtype
    scale = params.get("weight") or e.full((c,), 1.0, dtype)
    bias = params.get("bias") or e.full((c,), 0.0, dtype)
    return e.op("InstanceNormalization", xs[0], scale, bias, epsilon=float(op.eps))


@lowering(LayerNorm)
def _layer_norm(e: NodeEmitter, op: LayerNorm, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    shape = op.shape(e.ins[0])
    scale = params.get("weight") or e.full(shape, 1.0, e.ins[0].dtype)
    return e.op("LayerNormalization", xs[0], scale, params.get("bias"), axis=-len(shape), epsilon=float(op.eps))


@lowering(LayerNorm2d)
def _layer_norm2d(e: NodeEmitter, op: LayerNorm2d, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    # channels-first -> channels-last, LayerNormalization over C, and back (timm LayerNorm2d)
    rank = e.ins[0].rank
    last = e.op("Transpose", xs[0], perm=[0, *range(2, rank), 1])
    scale = params.get("weight") or e.full((channels(op, e.ins[0]),), 1.0, e.ins[0].dtype)
    y = e.op("LayerNormalization", last, scale, params.get("bias"), axis=-1, epsilon=float(op.eps))
    return e.op("Transpose", y, perm=[0, rank - 1, *range(1, rank - 1)])


@lowering(RMSNorm)
def _rms_norm(e: NodeEmitter, op: RMSNorm, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    # x / sqrt(mean(x^2) + eps) * weight over the trailing axes; eps None = finfo(dtype).eps (torch)
    x, t = xs[0], e.ins[0]
    n = len(op.shape(t))
    eps = _FINFO_EPS[t.dtype] if op.eps is None else op.eps
    ms = e.op("ReduceMean", e.op("Mul", x, x), e.i64(list(range(t.rank - n, t.rank))), keepdims=1)
    y = e.op("Mul", x, e.op("Reciprocal", e.op("Sqrt", e.op("Add", ms, e.scalar(eps, t.dtype)))))
    return e.op("Mul", y, params["weight"]) if "weight" in params else y


@lowering(GroupNorm)
def _group_norm(e: NodeEmitter, op: GroupNorm, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    # [N, C, ...] -> [N, G, -1], statistics per group, back to the input's shape, per-channel affine
    t = e.ins[0]
    grouped = e.op("Reshape", xs[0], e.i64([0, op.num_groups, -1]))
    y = normalize_over(e, grouped, [2], op.eps, t.dtype)
    y = e.op("Reshape", y, e.shape_of(xs[0]))
    w, b = params.get("weight"), params.get("bias")
    return affine(e, y, w and channel_view(e, w, t.rank), b and channel_view(e, b, t.rank))


@lowering(LocalResponseNorm)
def _lrn(e: NodeEmitter, op: LocalResponseNorm, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    x, t = xs[0], e.ins[0]
    if op.size % 2:     # ONNX LRN's window is torch's for odd sizes
        return e.op("LRN", x, size=op.size, alpha=float(op.alpha), beta=float(op.beta), bias=float(op.k))
    # even sizes: torch's window is [c - size//2, c + (size-1)//2]; average x^2 over it as torch does
    sq = e.op("Unsqueeze", e.op("Mul", x, x), e.i64([1]))
    if t.rank > 3:
        sq = e.op("Reshape", sq, e.i64([0, 0, 0, -1]))                      # [N, 1, C, rest]
    avg = e.op("AveragePool", sq, kernel_shape=[op.size, 1], pads=[op.size // 2, 0, (op.size - 1) // 2, 0],
               count_include_pad=1)
    div = e.op("Add", e.op("Mul", e.op("Reshape", avg, e.shape_of(x)), e.scalar(op.alpha, t.dtype)),
               e.scalar(op.k, t.dtype))
    return e.op("Div", x, e.op("Pow", div, e.scalar(op.beta, t.dtype)))
