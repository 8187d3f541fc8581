"""Mixing ops against torch: LeViT's attention-bias gather and F.normalize; shape rules, parameters, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from ops.helpers import build_op_spec, check_shape_rule, compile_op, expect_error, run_op_spec

import archdsl
from archdsl.ops.base import Trait
from archdsl.ops.mixing import AttentionBias, Normalize


def naive_bias_index(r0: int, r1: int, stride: int) -> torch.Tensor:
    """The LeViT index written as the paper states it: |dy| * R1 + |dx| for each (query, key) pair."""
    rows = []
    for qy in range(0, r0, stride):
        for qx in range(0, r1, stride):
            rows.append([abs(qy - ky) * r1 + abs(qx - kx) for ky in range(r0) for kx in range(r1)])
    return torch.tensor(rows)


def bias_model(args: str) -> torch.nn.Module:
    """A model whose output is the gathered bias table (plus a zero input, so the input is used)."""
    spec = f"model M() {{\n in x: [1]\n attention_biases = AttentionBias({args})\n out attention_biases + x\n}}"
    return archdsl.build(spec).double().eval()


@pytest.mark.parametrize("args,r0,r1,stride", [("2, 4", 4, 4, 1), ("3, 7, stride=2", 7, 7, 2),
                                               ("1, (3, 5)", 3, 5, 1), ("2, (5, 4), stride=3", 5, 4, 3)],
                         ids=["R4", "R7-s2", "R3x5", "R5x4-s3"])
def test_attention_bias_gathers_the_table_by_relative_offset(args, r0, r1, stride):
    m = bias_model(args)
    assert list(m.state_dict()) == ["attention_biases"]
    with torch.no_grad():
        m.attention_biases.copy_(torch.randn_like(m.attention_biases))
    out = m(torch.zeros(1, dtype=torch.float64))
    idx = naive_bias_index(r0, r1, stride)
    assert m.attention_biases.shape[1] == r0 * r1
    assert out.shape == (m.attention_biases.shape[0], *idx.shape)
    assert torch.equal(out, m.attention_biases[:, idx])


@pytest.mark.reference
@pytest.mark.parametrize("r,stride", [(14, 1), (14, 2), (7, 2), (4, 1)])
def test_attention_bias_index_matches_timm(r, stride):
    levit = pytest.importorskip("timm.models.levit")
    ref = (levit.Attention(8, 4, num_heads=2, resolution=r) if stride == 1 else
           levit.AttentionDownsample(8, 8, 4, num_heads=2, stride=stride, resolution=r))
    assert AttentionBias(num_heads=2, resolution=r, stride=stride).index() == ref.attention_bias_idxs.tolist()


def test_attention_bias_index_method_is_the_naive_index():
    op = AttentionBias(num_heads=1, resolution=(5, 3), stride=2)
    assert torch.equal(torch.tensor(op.index()), naive_bias_index(5, 3, 2))


def test_attention_bias_type_param_and_cost():
    graph = archdsl.compile("model M() {\n in x: [N, 2, 4, 16]\n ab = AttentionBias(2, 4, stride=2)\n out x + ab\n}")
    node = next(n for n in graph.nodes if isinstance(n.op, AttentionBias))
    assert graph.value_types()[node.outputs[0]].shape == (2, 4, 16)
    assert graph.params["ab"].shape == (2, 16) and graph.params["ab"].init == "zeros"
    assert graph.num_params() == 32
    assert node.op.cost([], [graph.value_types()[node.outputs[0]]]).macs == 0


@pytest.mark.parametrize("args,fragment", [("0, 4", "num_heads"), ("2, 4, stride=0", "stride"),
                                           ("2, (4, 4, 4)", "resolution"), ("2, -3", "resolution")])
def test_attention_bias_rejects_bad_attributes(args, fragment):
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.compile(f"model M() {{\n in x: [1]\n ab = AttentionBias({args})\n out ab + x\n}}")
    assert fragment in str(info.value)


@pytest.mark.parametrize("dim", [1, -1, 0])
def test_normalize_one_axis_matches_torch(dim):
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(run_op_spec(f"Normalize({dim})", {"x": x}), F.normalize(x, dim=dim))


def test_normalize_p_and_eps_match_torch():
    x = torch.randn(3, 4, dtype=torch.float64)
    x[0] = 0.0   # the zero row is divided by eps, not by 0
    out = run_op_spec("normalize(-1, p=1.0, eps=1e-3)", {"x": x})
    torch.testing.assert_close(out, F.normalize(x, p=1.0, dim=-1, eps=1e-3))
    assert torch.isfinite(out).all()


def test_normalize_several_axes_jointly():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    out = run_op_spec("normalize((1, -2))", {"x": x})
    torch.testing.assert_close(out, x / x.pow(2).sum((1, 2), keepdim=True).sqrt())
    torch.testing.assert_close(out.pow(2).sum((1, 2)), torch.ones(2, 5, dtype=torch.float64))


def test_normalize_keeps_symbolic_shapes_and_resolves_axes():
    check_shape_rule("normalize((2, 3))", {"x": torch.randn(2, 3, 4, 5)}, {"x": "N, 3, H, W"})
    graph = compile_op("normalize((-1, 1))", {"x": "N, C, L"})
    assert graph.nodes[0].op.dim == (1, 2)
    assert compile_op("normalize(-1)", {"x": "N, C, L"}).nodes[0].op.dim == 2


@pytest.mark.parametrize("body,fragments", [("normalize(3)", ("axis 3", "out of range")),
                                            ("normalize((1, -2))", ("repeated",)),
                                            ("normalize(())", ("at least one axis",)),
                                            ("normalize(1, p=0.0)", ("positive",)),
                                            ("normalize(1, eps=-1.0)", ("negative",))])
def test_normalize_errors(body, fragments):
    expect_error(body, {"x": "N, 4, 5"}, *fragments)


def test_normalize_rejects_integer_tensors():
    with pytest.raises(archdsl.ArchError, match="floating-point"):
        archdsl.compile("model M() {\n in ids: int64[N, 4]\n out ids |> normalize(1)\n}")


@settings(max_examples=20, deadline=None)
@given(st.floats(0.1, 10.0), st.integers(0, 2))
def test_normalize_is_odd_and_scale_invariant(scale, dim):
    assert Normalize().has(Trait.ODD) and not Normalize().has(Trait.LINEAR)
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    m = build_op_spec(f"normalize({dim})", {"x": x})
    torch.testing.assert_close(m(-x), -m(x))
    torch.testing.assert_close(m(scale * x), m(x))
