"""Helpers several rule families share: padding, per-channel views of parameters, batch statistics."""

from __future__ import annotations

from collections.abc import Sequence

import onnx_ir as ir

from archdsl.backends.onnx.emitter import NodeEmitter

# ONNX Pad modes of torch's padding modes ('circular' is 'wrap' from opset 19)
PAD_MODES = {"zeros": "constant", "constant": "constant", "reflect": "reflect", "replicate": "edge",
             "circular": "wrap"}


def pad(e: NodeEmitter, x: ir.Value, rank: int, pads: Sequence[tuple[int, int]], mode: str,
        value: float = 0.0, dtype: str = "float32") -> ir.Value:
    """Pad the last ``len(pads)`` axes of ``x`` by (before, after) each; negative amounts crop (constant)."""
    n = len(pads)
    axes = list(range(rank - n, rank))
    onnx_mode = PAD_MODES[mode]
    if onnx_mode == "wrap" and e.opset < 19:
        return _circular(e, x, axes, pads)
    amounts = e.i64([a for a, _ in pads] + [b for _, b in pads])
    fill = e.scalar(value, dtype) if onnx_mode == "constant" and value != 0 else None
    return e.op("Pad", x, amounts, fill, e.i64(axes), mode=onnx_mode)


def _circular(e: NodeEmitter, x: ir.Value, axes: list[int], pads: Sequence[tuple[int, int]]) -> ir.Value:
    """Circular padding before opset 19: the wrapped-around slices concatenated on each side."""
    for axis, (before, after) in zip(axes, pads, strict=True):
        parts = []
        if before:
            parts.append(e.op("Slice", x, e.i64([-before]), e.i64([2**62]), e.i64([axis])))
        parts.append(x)
        if after:
            parts.append(e.op("Slice", x, e.i64([0]), e.i64([after]), e.i64([axis])))
        if len(parts) > 1:
            x = e.op("Concat", *parts, axis=axis)
    return x


def channel_view(e: NodeEmitter, p: ir.Value, rank: int, axis: int = 1) -> ir.Value:
    """A per-channel [C] parameter as [C, 1, ..., 1], broadcasting over an input of ``rank`` from ``axis``."""
    trailing = rank - axis - 1
    if trailing == 0:
        return p
    return e.op("Unsqueeze", p, e.i64(list(range(1, trailing + 1))))


def normalize_over(e: NodeEmitter, x: ir.Value, axes: Sequence[int], eps: float, dtype: str) -> ir.Value:
    """(x - mean) / sqrt(biased var + eps) over ``axes`` (statistics of this input, as in training mode)."""
    axes_v = e.i64(list(axes))
    mean = e.op("ReduceMean", x, axes_v, keepdims=1)
    centred = e.op("Sub", x, mean)
    var = e.op("ReduceMean", e.op("Mul", centred, centred), axes_v, keepdims=1)
    return e.op("Div", centred, e.op("Sqrt", e.op("Add", var, e.scalar(eps, dtype))))


def affine(e: NodeEmitter, y: ir.Value, weight: ir.Value | None, bias: ir.Value | None) -> ir.Value:
    """y * weight + bias, each optional (already shaped to broadcast)."""
    if weight is not None:
        y = e.op("Mul", y, weight)
    if bias is not None:
        y = e.op("Add", y, bias)
    return y
