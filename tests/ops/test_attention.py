"""Attention: scaled dot-product attention against a naive reference; self-attention as nn.MultiheadAttention."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl.ir.dims import SymDim
from archdsl.ir.types import TensorType
from archdsl.ops.attention import MultiheadSelfAttention, ScaledDotProductAttention
from archdsl.ops.base import Trait

SDPA = "model M() {{\n in q: [B, H, L, 4]\n in k: [B, H, S, 4]\n in v: [B, H, S, 3]\n out {expr}\n}}"


def naive(q, k, v, causal=False, scale=None):
    """softmax(q k^T * scale + mask) v, written out."""
    scores = q @ k.transpose(-1, -2) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    if causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    return torch.softmax(scores, -1) @ v


@pytest.mark.parametrize(("expr", "kwargs"), [
    ("scaled_dot_product_attention(q, k, v)", {}),
    ("scaled_dot_product_attention(q, k, v, is_causal=true)", {"causal": True}),
    ("scaled_dot_product_attention(q, k, v, scale=0.3)", {"scale": 0.3}),
])
def test_sdpa_matches_naive(expr, kwargs):
    module = archdsl.build(SDPA.format(expr=expr)).double()
    q = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    k, v = torch.randn(2, 3, 5, 4, dtype=torch.float64), torch.randn(2, 3, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(module(q, k, v), naive(q, k, v, **kwargs))


def test_sdpa_cross_lengths():
    module = archdsl.build(SDPA.format(expr="scaled_dot_product_attention(q, k, v)")).double()
    q, k, v = (torch.randn(1, 2, 3, 4, dtype=torch.float64), torch.randn(1, 2, 7, 4, dtype=torch.float64),
               torch.randn(1, 2, 7, 3, dtype=torch.float64))
    torch.testing.assert_close(module(q, k, v), F.scaled_dot_product_attention(q, k, v))


MHSA = "model M() {{\n in x: [B, T, 8]\n self_attention = MultiheadSelfAttention({args})\n out x |> self_attention\n}}"


def test_self_attention_is_nn_multihead_attention():
    module = archdsl.build(MHSA.format(args="2"), seed=0).eval()
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {
        "self_attention.in_proj_weight": (24, 8), "self_attention.in_proj_bias": (24,),
        "self_attention.out_proj.weight": (8, 8), "self_attention.out_proj.bias": (8,)}
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    for name, value in ref.state_dict().items():
        assert torch.equal(module.state_dict()["self_attention." + name], value), name
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    want = ref.double()(x, x, x, need_weights=False)[0]
    torch.testing.assert_close(module.double()(x), want)


def test_self_attention_graph_params_match_module():
    graph = archdsl.compile(MHSA.format(args="4, bias=false"))
    module = archdsl.build(graph)
    assert {k: tuple(p.shape) for k, p in graph.params.items()} == \
        {k: tuple(v.shape) for k, v in module.state_dict().items()} == \
        {"self_attention.in_proj_weight": (24, 8), "self_attention.out_proj.weight": (8, 8)}


def test_dropout_makes_attention_stochastic():
    assert not MultiheadSelfAttention(num_heads=2).has(Trait.STOCHASTIC)
    noisy = MultiheadSelfAttention(num_heads=2, dropout=0.1)
    assert noisy.has(Trait.STOCHASTIC) and noisy.has(Trait.TRAIN_EVAL)


@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(1, 4), st.integers(1, 4))
def test_sdpa_shape_rule_matches_torch(h, length, source, e, ev):
    sym = SymDim.symbol
    ins = [TensorType(shape=(sym("B"), h, sym("L"), e)), TensorType(shape=(sym("B"), h, sym("S"), e)),
           TensorType(shape=(sym("B"), h, sym("S"), ev))]
    out = ScaledDotProductAttention().infer(ins)[0]
    env = {"B": 2, "L": length, "S": source}
    real = F.scaled_dot_product_attention(torch.zeros(2, h, length, e), torch.zeros(2, h, source, e),
                                          torch.zeros(2, h, source, ev))
    assert tuple(d if isinstance(d, int) else d.evaluate(env) for d in out.shape) == tuple(real.shape)


def test_costs():
    b, t = SymDim.symbol("B"), SymDim.symbol("T")
    x = TensorType(shape=(b, t, 8))
    op = MultiheadSelfAttention(num_heads=2)
    assert op.cost([x], [x]).macs == b * t * 4 * 64 + b * t * t * 16
    q = TensorType(shape=(b, 2, t, 4))
    assert ScaledDotProductAttention().cost([q, q, q], [q]).macs == b * 2 * t * t * 8


@pytest.mark.parametrize(("inputs", "body", "message"), [
    ("in x: [B, T, 10]", "a = MultiheadSelfAttention(4)\n out x |> a", "embed_dim 10 is not divisible by num_heads=4"),
    ("in x: [B, T, 8]", "a = MultiheadSelfAttention(2, dropout=1.5)\n out x |> a", "bad value for 'dropout'"),
    ("in x: [B, H, T, 8]", "a = MultiheadSelfAttention(2)\n out x |> a", "rank 3"),
    ("in x: [B, T, D]", "a = MultiheadSelfAttention(2)\n out x |> a", "known feature size"),
    ("in q: [B, 2, T, 4]\n in k: [B, 2, T, 5]", "out scaled_dot_product_attention(q, k, k)", "same feature size"),
    ("in q: [B, 2, T, 4]\n in k: [B, 2, S, 4]\n in v: [B, 2, T, 4]", "out scaled_dot_product_attention(q, k, v)",
     "same length"),
    ("in q: [B, 2, T, 4]\n in k: [B, 3, T, 4]", "out scaled_dot_product_attention(q, k, k)", "same batch axes"),
    ("in q: [T, 4]", "out scaled_dot_product_attention(q, q, q)", "with batch axes"),
])
def test_errors(inputs, body, message):
    with pytest.raises(archdsl.ArchError, match=message):
        archdsl.compile(f"model M() {{\n {inputs}\n {body}\n}}")
