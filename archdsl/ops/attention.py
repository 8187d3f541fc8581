"""Softmax attention: scaled dot-product attention on [B, H, T, D] and multi-head self-attention on [B, T, D]."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import field_validator

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.activation import expect_float
from archdsl.ops.base import Cost, OpDef, ParamSpec, PositiveInt, Trait, expect_rank
from archdsl.ops.linear import last_dim
from archdsl.ops.shape import product
from archdsl.symmetry.contract import AttentionCore, Pinned, SelfAttention


class ScaledDotProductAttention(OpDef):
    """softmax(q k^T * scale [+ causal mask]) v; q [..., L, E], k [..., S, E], v [..., S, Ev] -> [..., L, Ev]."""

    name: ClassVar = "scaled_dot_product_attention"
    symmetry: ClassVar = AttentionCore()
    arity: ClassVar = 3
    family: ClassVar = "attention"
    is_causal: bool = False
    scale: float | None = None           # None: 1 / sqrt(E)

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        q, k, v = inputs
        for name, t in zip("qkv", inputs, strict=True):
            if t.rank < 3:
                raise OpError(f"scaled_dot_product_attention: {name} must be [..., T, D] with batch axes, got {t}",
                              "split the heads first: reshape [B, T, H*D] to [B, T, H, D] and transpose(1, 2) to "
                              "[B, H, T, D]")
            expect_float(self, t)
        if not q.shape[:-2] == k.shape[:-2] == v.shape[:-2] or not q.dtype == k.dtype == v.dtype:
            raise OpError(f"scaled_dot_product_attention: q {q}, k {k} and v {v} need the same batch axes "
                          "and dtype", "give q, k and v the same leading [B, H] axes (repeat or expand the k/v "
                          "heads for grouped-query attention) and one dtype (declare the inputs so)")
        if q.shape[-1] != k.shape[-1]:
            raise OpError(f"scaled_dot_product_attention: q and k need the same feature size, got {q} and {k}",
                          "project q and k to the same head size (the last axis)")
        if k.shape[-2] != v.shape[-2]:
            raise OpError(f"scaled_dot_product_attention: k and v need the same length, got {k} and {v}",
                          "k and v come from the same sequence: their axis -2 (T) must match")
        return [q.with_shape((*q.shape[:-1], v.shape[-1]))]

    def attention_weights(self, params: dict, inputs: list) -> Any:
        """softmax(q k^T * scale [+ causal mask]) [..., L, S] from tensors q, k, v: what the linear interpreter
        freezes at its input."""
        import torch

        q, k, _ = inputs
        scores = q @ k.transpose(-2, -1) * (self.scale if self.scale is not None else q.shape[-1] ** -0.5)
        if self.is_causal:                              # torch's convention: the top-left aligned lower triangle
            keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
            scores = scores.masked_fill(~keep, float("-inf"))
        return scores.softmax(-1)

    def attend(self, params: dict, weights: Any, inputs: list) -> Any:
        """The output with the attention probabilities fixed to ``weights``: ``weights @ v`` (linear in v)."""
        return weights @ inputs[2]

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        q, k, v = inputs
        scores = product(q.shape[:-1]) * k.shape[-2]          # one per (query, key) pair
        return Cost(macs=scores * (q.shape[-1] + v.shape[-1]), activations=outputs[0].numel())


class MultiheadSelfAttention(OpDef):
    """nn.MultiheadAttention(x, x, x) with batch_first=True on [B, T, D]; D is read from the input."""

    name: ClassVar = "multihead_self_attention"
    symmetry: ClassVar = SelfAttention()
    positional: ClassVar = ("num_heads",)
    family: ClassVar = "attention"
    num_heads: PositiveInt
    bias: bool = True
    dropout: float = 0.0

    @field_validator("dropout")
    @classmethod
    def _probability(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError("must be in [0, 1)")
        return v

    def has(self, trait: Trait) -> bool:
        """Attention dropout makes the op stochastic and train/eval dependent."""
        if trait in (Trait.STOCHASTIC, Trait.TRAIN_EVAL):
            return self.dropout > 0
        return super().has(trait)

    def embed_dim(self, x: TensorType) -> int:
        """The model width D, checked against num_heads."""
        expect_rank(self, x, 3)
        expect_float(self, x)
        d = last_dim(self, x)
        if d % self.num_heads:
            raise OpError(f"multihead_self_attention: embed_dim {d} is not divisible by num_heads={self.num_heads}",
                          "choose num_heads dividing the input's last axis (each head gets embed_dim / num_heads)")
        return d

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        self.embed_dim(inputs[0])
        return [inputs[0]]

    def _project(self, params: dict, x: Any, part: int) -> Any:
        """Rows ``part`` (0 query, 1 key, 2 value) of the input projection, as heads [B, heads, T, D/heads]."""
        d = x.shape[-1]
        w = params["in_proj_weight"][part * d:(part + 1) * d]
        b = params["in_proj_bias"][part * d:(part + 1) * d] if self.bias else None
        y = x @ w.T + (b if b is not None else 0)
        return y.reshape(*x.shape[:-1], self.num_heads, d // self.num_heads).transpose(-3, -2)

    def attention_weights(self, params: dict, inputs: list) -> Any:
        """softmax(q k^T / sqrt(D/heads)) per head [B, heads, T, T] (eval mode): what the linear interpreter
        freezes at its input."""
        q, k = (self._project(params, inputs[0], i) for i in (0, 1))
        return (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(-1)

    def attend(self, params: dict, weights: Any, inputs: list) -> Any:
        """The output with the attention probabilities fixed to ``weights``: affine in x (values and projections)."""
        x = inputs[0]
        heads = (weights @ self._project(params, x, 2)).transpose(-3, -2).reshape(x.shape)
        out = heads @ params["out_proj.weight"].T
        return out + params["out_proj.bias"] if self.bias else out

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        d = self.embed_dim(inputs[0])
        out = {"in_proj_weight": ParamSpec((3 * d, d), "xavier_uniform", fan_in=d)}
        if self.bias:
            out["in_proj_bias"] = ParamSpec((3 * d,), "zeros", axis="feature")
        out["out_proj.weight"] = ParamSpec((d, d), "kaiming_uniform(a=sqrt(5))", fan_in=d)
        if self.bias:
            out["out_proj.bias"] = ParamSpec((d,), "zeros", axis="feature")
        return out

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        x = inputs[0]
        d = self.embed_dim(x)
        tokens = product(x.shape[:-1])
        return Cost(macs=tokens * 4 * d * d + tokens * x.shape[1] * 2 * d, activations=outputs[0].numel())


class Rotary(OpDef):
    """Rotary position embedding (RoPE, Su et al. 2021) on [B, T, H, D]: channel pairs turned by position x theta_i.

    With ``d = rotary_dim`` (default D) and ``theta_i = base ** (-2i / d)``, the pair (x_i, x_j) at position t
    becomes (x_i cos(t theta_i) - x_j sin(t theta_i), x_j cos(t theta_i) + x_i sin(t theta_i)); j = i + d/2 (GPT-NeoX
    and fla's default) or, with ``interleaved``, the pairs are (2i, 2i + 1) (GPT-J). Channels past d pass
    unchanged. Positions count from 0; in decoding (``model.step``) they continue from the tokens already seen.
    fla's RotaryEmbedding (RetNet's q and k) computes the same.
    """

    name: ClassVar = "rotary"
    family: ClassVar = "attention"
    traits: ClassVar = frozenset({Trait.RECURRENT})      # the position offset is its decoding state
    symmetry: ClassVar = Pinned("a rotary embedding turns channel pairs (i, i + d/2) by their position")
    rank_hint: ClassVar = "split the heads first: x |> reshape((B, T, num_heads, -1)) |> rotary()"
    base: float = 10000.0
    interleaved: bool = False
    rotary_dim: PositiveInt | None = None

    @field_validator("base")
    @classmethod
    def _positive_base(cls, v: float) -> float:
        if not v > 1.0 or v == float("inf"):
            raise ValueError(f"base must be a finite number above 1, got {v}")
        return v

    def width(self, x: TensorType) -> Any:
        """The number of rotated channels: ``rotary_dim`` or the head width D."""
        return self.rotary_dim if self.rotary_dim is not None else x.shape[3]

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        expect_rank(self, x, 4)
        expect_float(self, x)
        head = x.shape[3]
        if not isinstance(head, int):
            raise OpError(f"rotary: the head width (axis 3) must be a number, got {head}",
                          "reshape to heads with a known width: reshape((B, T, num_heads, head_dim))")
        d = self.width(x)
        if d > head or d % 2:
            raise OpError(f"rotary: rotary_dim must be even and at most the head width {head}, got {d}",
                          "rotate an even number of leading channels of each head")
        return [x]

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        x = inputs[0]
        return Cost(macs=product(x.shape[:3]) * (2 * self.width(x)), activations=x.numel())


OPS = (ScaledDotProductAttention, MultiheadSelfAttention, Rotary)
