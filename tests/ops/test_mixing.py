"""Mixing ops against torch: F.normalize; shape rules, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.ops.base import Trait
from archdsl.ops.mixing import Normalize
from tests.ops.helpers import build_op_spec, check_shape_rule, compile_op, expect_error, run_op_spec


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
