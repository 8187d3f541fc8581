"""Softmax attention as MatMul/Softmax/MatMul and the rotary embedding from Range/Cos/Sin (ONNX has neither
Attention nor RotaryEmbedding before opset 23)."""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from archdsl.backends.onnx.emitter import DTYPES, NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.ir.types import TensorType
from archdsl.ops.attention import MultiheadSelfAttention, Rotary, ScaledDotProductAttention

CAUSAL_CONSTANT_LIMIT = 1 << 16     # causal masks up to this many entries are stored; larger ones made at run time


def swap_last(e: NodeEmitter, x: ir.Value, rank: int) -> ir.Value:
    """x^T over the last two axes."""
    return e.op("Transpose", x, perm=[*range(rank - 2), rank - 1, rank - 2])


def causal_mask(e: NodeEmitter, q: ir.Value, qt: TensorType, k: ir.Value, kt: TensorType) -> ir.Value:
    """bool [L, S], true where key s <= query l (torch's is_causal: the top-left aligned lower triangle)."""
    length, span = qt.shape[-2], kt.shape[-2]
    if isinstance(length, int) and isinstance(span, int) and length * span <= CAUSAL_CONSTANT_LIMIT:
        return e.emitter.const(np.tril(np.ones((length, span), dtype=bool)))
    shape = e.op("Concat", e.axis_size(q, qt.rank - 2), e.axis_size(k, kt.rank - 2), axis=0)
    ones = e.op("ConstantOfShape", shape, value=ir.tensor(np.ones(1, dtype=np.float32)))
    return e.op("Cast", e.op("Trilu", ones, upper=0), to=ir.DataType.BOOL)


def attend(e: NodeEmitter, q: ir.Value, k_t: ir.Value, v: ir.Value, scale: ir.Value, dtype: str,
           mask: ir.Value | None = None) -> ir.Value:
    """softmax(q k^T * scale [masked]) v with k already transposed."""
    scores = e.op("Mul", e.op("MatMul", q, k_t), scale)
    if mask is not None:
        scores = e.op("Where", mask, scores, e.scalar(-math.inf, dtype))
    return e.op("MatMul", e.op("Softmax", scores, axis=-1), v)


@lowering(ScaledDotProductAttention)
def _sdpa(e: NodeEmitter, op: ScaledDotProductAttention, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    q, k, v = xs
    qt, kt, _ = e.ins
    width = qt.shape[-1]
    if op.scale is not None:
        scale = e.scalar(op.scale, qt.dtype)
    elif isinstance(width, int):
        scale = e.scalar(1.0 / math.sqrt(width), qt.dtype)
    else:                                # 1 / sqrt(E) of a symbolic feature size
        size = e.op("Cast", e.op("Squeeze", e.axis_size(q, qt.rank - 1)), to=DTYPES[qt.dtype])
        scale = e.op("Reciprocal", e.op("Sqrt", size))
    mask = causal_mask(e, q, qt, k, kt) if op.is_causal else None
    return attend(e, q, swap_last(e, k, kt.rank), v, scale, qt.dtype, mask)


@lowering(MultiheadSelfAttention)
def _mhsa(e: NodeEmitter, op: MultiheadSelfAttention, xs: list[ir.Value],
          params: dict[str, ir.Value]) -> ir.Value:
    # nn.MultiheadAttention(x, x, x), batch_first, eval: in_proj -> heads -> attention -> merge -> out_proj
    t = e.ins[0]
    d = op.embed_dim(t)
    h = op.num_heads
    qkv = e.op("MatMul", xs[0], e.op("Transpose", params["in_proj_weight"], perm=[1, 0]))
    if "in_proj_bias" in params:
        qkv = e.op("Add", qkv, params["in_proj_bias"])
    heads = e.op("Transpose", e.op("Reshape", qkv, e.i64([0, 0, 3, h, d // h])), perm=[2, 0, 3, 1, 4])
    q, k, v = (e.op("Gather", heads, e.i64(i), axis=0) for i in range(3))     # each [B, h, T, d/h]
    k_t = e.op("Transpose", k, perm=[0, 1, 3, 2])
    y = attend(e, q, k_t, v, e.scalar(1.0 / math.sqrt(d // h), t.dtype), t.dtype)
    y = e.op("Reshape", e.op("Transpose", y, perm=[0, 2, 1, 3]), e.i64([0, 0, d]))
    y = e.op("MatMul", y, e.op("Transpose", params["out_proj.weight"], perm=[1, 0]))
    return e.op("Add", y, params["out_proj.bias"]) if "out_proj.bias" in params else y


@lowering(Rotary)
def _rotary(e: NodeEmitter, op: Rotary, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    # positions 0 .. T-1 (Range), angles t * theta_i in float32 (float64 for float64), the pairs turned by Mul/Sub/Add
    x, t = xs[0], e.ins[0]
    d, head = int(op.width(t)), int(t.shape[3])
    work = "float64" if t.dtype == "float64" else "float32"
    steps = e.op("Squeeze", e.axis_size(x, 1), e.i64([0]))
    positions = e.op("Cast", e.op("Range", e.i64(0), steps, e.i64(1)), to=DTYPES[work])
    inv_freq = op.base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    angles = e.op("Mul", e.op("Unsqueeze", positions, e.i64([1])), e.emitter.const(inv_freq, DTYPES[work]))
    axes = [0, 2, 4] if op.interleaved else [0, 2]                 # [1, T, 1, d/2(, 1)]
    cos, sin = (e.op("Unsqueeze", e.op(f, angles), e.i64(axes)) for f in ("Cos", "Sin"))
    if work != t.dtype:
        cos, sin = (e.op("Cast", v, to=DTYPES[t.dtype]) for v in (cos, sin))
    sizes = [d, head - d] if head > d else [d]
    rot, *rest = e.op("Split", x, e.i64(sizes), axis=3, outputs=len(sizes)) if head > d else (x,)
    if op.interleaved:
        rot = e.op("Reshape", rot, e.i64([0, 0, 0, d // 2, 2]))
    x1, x2 = e.op("Split", rot, e.i64([1, 1] if op.interleaved else [d // 2, d // 2]), axis=-1, outputs=2)
    first = e.op("Sub", e.op("Mul", x1, cos), e.op("Mul", x2, sin))
    second = e.op("Add", e.op("Mul", x2, cos), e.op("Mul", x1, sin))
    turned = e.op("Concat", first, second, axis=-1)
    if op.interleaved:
        turned = e.op("Reshape", turned, e.i64([0, 0, 0, d]))
    return e.op("Concat", turned, *rest, axis=3) if rest else turned
