"""Lowerings of attention: F.scaled_dot_product_attention and nn.MultiheadAttention (torchvision ViT names)."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import ctor, fn
from archdsl.ir.types import TensorType
from archdsl.ops.attention import MultiheadSelfAttention, ScaledDotProductAttention


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
