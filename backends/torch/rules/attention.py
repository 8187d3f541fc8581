"""Lowerings of attention: F.scaled_dot_product_attention, nn.MultiheadAttention (torchvision ViT names) and the
rotary embedding (through ``rt.decoding`` so that ``model.step`` continues the positions)."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import ctor, fn
from archdsl.ir.types import TensorType
from archdsl.ops.attention import MultiheadSelfAttention, Rotary, ScaledDotProductAttention


@lowering(ScaledDotProductAttention)
def _sdpa(op: ScaledDotProductAttention, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("F.scaled_dot_product_attention", *args, is_causal=op.is_causal, scale=op.scale)


def _mhsa_module(op: MultiheadSelfAttention, ins: list[TensorType]) -> str:
    return ctor("nn.MultiheadAttention", op.embed_dim(ins[0]), op.num_heads, dropout=op.dropout, bias=op.bias,
                batch_first=True)


@lowering(MultiheadSelfAttention, module=_mhsa_module)
def _mhsa(op: MultiheadSelfAttention, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    x = args[0]
    return f"{ref}({x}, {x}, {x}, need_weights=False)[0]"


@lowering(Rotary)
def _rotary(op: Rotary, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    key = f"rotary({args[0]})"          # value names are unique: one state key per node
    return fn("rt.decoding.rotary", "self", repr(key), args[0], base=op.base, interleaved=op.interleaved,
              rotary_dim=op.rotary_dim)
