"""Dropout, stochastic depth and LayerScale: train/eval behaviour, torch references, names; errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from archdsl.ops.base import Trait
from archdsl.ops.registry import lookup
from tests.ops.helpers import build_op_spec, check_shape_rule, compile_op, expect_error


def _torchvision_stochastic_depth(x: torch.Tensor, p: float, mode: str) -> torch.Tensor:
    """torchvision.ops.stochastic_depth in training mode, copied as the reference."""
    survival = 1.0 - p
    size = [x.shape[0]] + [1] * (x.ndim - 1) if mode == "row" else [1] * x.ndim
    noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
    if survival > 0.0:
        noise.div_(survival)
    return x * noise


def _seeded(fn, seed: int = 7):
    torch.manual_seed(seed)
    return fn()


@pytest.mark.parametrize("body,ref", [
    ("Dropout(0.3)", lambda x: F.dropout(x, 0.3, True)),
    ("Dropout2d(0.5)", lambda x: F.dropout2d(x, 0.5, True)),
    ("StochasticDepth(0.4)", lambda x: _torchvision_stochastic_depth(x, 0.4, "row")),
    ("StochasticDepth(0.4, \"batch\")", lambda x: _torchvision_stochastic_depth(x, 0.4, "batch")),
    ("StochasticDepth(1.0)", lambda x: _torchvision_stochastic_depth(x, 1.0, "row")),
])
def test_train_mode_matches_reference_and_eval_is_identity(body, ref):
    x = torch.randn(8, 4, 3, 3, dtype=torch.float64)
    m = build_op_spec(body, {"x": x}).train()
    torch.testing.assert_close(_seeded(lambda: m(x)), _seeded(lambda: ref(x)))
    m.eval()
    assert torch.equal(m(x), x)
    assert not m.state_dict()


def test_stochastic_depth_drops_whole_rows_and_rescales():
    x = torch.ones(64, 3, 2, dtype=torch.float64)
    m = build_op_spec("StochasticDepth(0.25)", {"x": x}).train()
    out = _seeded(lambda: m(x))
    per_row = out.flatten(1)
    assert set(per_row.unique().tolist()) <= {0.0, 1 / 0.75}
    assert bool((per_row == per_row[:, :1]).all())   # all-or-nothing per sample
    batch = build_op_spec("StochasticDepth(0.5, mode=\"batch\")", {"x": x}).train()
    assert len(_seeded(lambda: batch(x)).unique()) == 1


def test_zero_probability_is_the_identity_in_training():
    x = torch.randn(4, 5, dtype=torch.float64)
    for body in ("StochasticDepth(0.0)", "Dropout(0.0)"):
        assert torch.equal(build_op_spec(body, {"x": x}).train()(x), x)


@pytest.mark.parametrize("body,shape,view,init", [
    ("LayerScale(0.1)", (2, 5, 6), (6,), 0.1),
    ("LayerScale(1e-6, dim=1)", (2, 6, 3, 4), (6, 1, 1), 1e-6),
    ("LayerScale(dim=1)", (2, 6), (6,), 1e-5),
])
def test_layer_scale(body, shape, view, init):
    x = torch.randn(*shape, dtype=torch.float64)
    m = build_op_spec(body, {"x": x})
    assert list(m.state_dict()) == ["op.gamma"]
    torch.testing.assert_close(m.op.gamma, torch.full((6,), init, dtype=torch.float64))
    with torch.no_grad():
        m.op.gamma.copy_(torch.randn(6))
    torch.testing.assert_close(m(x), x * m.op.gamma.view(view))


def test_layer_scale_param_declaration():
    g = compile_op("LayerScale(0.5, dim=1)", {"x": "N, 8, H, W"})
    p = g.params["op.gamma"]
    assert p.shape == (8,) and p.axis == "channel" and p.init == "constant(value=0.5)"
    assert g.params == compile_op("LayerScale(0.5, dim=1)", {"x": "N, 8, H, W"}).params


def test_regularizer_traits():
    for name in ("Dropout", "Dropout2d", "StochasticDepth"):
        assert {Trait.TRAIN_EVAL, Trait.STOCHASTIC} <= lookup(name).traits
    assert Trait.LINEAR in lookup("LayerScale").traits and Trait.STOCHASTIC not in lookup("LayerScale").traits


@given(body=st.sampled_from(["Dropout(0.2)", "StochasticDepth(0.3)", "StochasticDepth(0.3, \"batch\")",
                             "LayerScale(0.5)", "LayerScale(0.5, dim=1)"]),
       rank=st.integers(2, 5), n=st.integers(1, 4))
def test_regularizer_shape_rule_is_identity(body, rank, n):
    shape = (n, 3, 2, 4)[:rank - 1] + (3,)                 # LayerScale needs a known last axis
    dims = ", ".join(("N", "3", "H", "W")[:rank - 1] + ("3",))
    out = check_shape_rule(body, {"x": torch.randn(*shape)}, {"x": dims})
    assert out.shape == shape


@pytest.mark.parametrize("body,dims,fragments", [
    ("Dropout(1.5)", {"x": "N, 4"}, ["between 0 and 1"]),
    ("Dropout(-0.1)", {"x": "N, 4"}, ["between 0 and 1"]),
    ("StochasticDepth()", {"x": "N, 4"}, ["needs the argument 'p'"]),
    ("StochasticDepth(0.1, mode=\"col\")", {"x": "N, 4"}, ["mode"]),
    ("Dropout2d(0.1)", {"x": "N, 4, L"}, ["rank 4"]),
    ("LayerScale(0.1)", {"x": "N, T, D"}, ["known size on axis -1"]),
    ("LayerScale(0.1, dim=2)", {"x": "N, 4, 4"}, ["dim"]),
    ("LayerScale(0.1, dim=1)", {"x": "N"}, ["dim=1 does not exist"]),
])
def test_regularizer_errors(body, dims, fragments):
    expect_error(body, dims, *fragments)
