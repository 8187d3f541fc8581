"""Normalisation layers against torch: outputs, parameter and buffer names, train/eval; shape rules; errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from archdsl.ops.base import Trait
from archdsl.ops.registry import lookup
from tests.ops.helpers import build_op_spec, check_shape_rule, compile_op, expect_error, run_op_spec

BN_NAMES = ["op.weight", "op.bias", "op.running_mean", "op.running_var", "op.num_batches_tracked"]


def _randomise(m: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial affine parameters and running statistics, so the reference check means something."""
    with torch.no_grad():
        for name, t in m.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5 if "var" in name or "weight" in name else torch.randn_like(t))
    return m


def test_batch_norm2d_eval_uses_running_stats():
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    m = _randomise(build_op_spec("BatchNorm2d(eps=1e-3)", {"x": x}))
    assert list(m.state_dict()) == BN_NAMES
    s = m.op
    torch.testing.assert_close(m(x), F.batch_norm(x, s.running_mean, s.running_var, s.weight, s.bias, False, 0.0, 1e-3))


@pytest.mark.parametrize("body,shape", [("BatchNorm2d(momentum=0.3)", (4, 3, 5, 5)), ("BatchNorm1d()", (6, 3)),
                                        ("BatchNorm1d()", (4, 3, 7)), ("BatchNorm3d()", (2, 3, 2, 3, 4))])
def test_batch_norm_train_matches_torch_and_updates_buffers(body, shape):
    x = torch.randn(*shape, dtype=torch.float64)
    m = _randomise(build_op_spec(body, {"x": x})).train()
    cls = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}
    ref = cls[len(shape)](3, momentum=m.op.momentum).double()
    ref.load_state_dict({k.removeprefix("op."): v for k, v in m.state_dict().items()})
    ref.train()
    torch.testing.assert_close(m(x), ref(x))
    torch.testing.assert_close(m.op.running_mean, ref.running_mean)
    torch.testing.assert_close(m.op.running_var, ref.running_var)
    assert int(m.op.num_batches_tracked) == 1


def test_batch_norm_without_affine_or_stats_has_no_params_and_uses_batch_stats():
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    m = build_op_spec("BatchNorm2d(affine=false, track_running_stats=false)", {"x": x})
    assert not m.state_dict()
    torch.testing.assert_close(m(x), F.batch_norm(x, None, None, training=True))


def test_layer_norm_over_last_dims():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    m = _randomise(build_op_spec("LayerNorm((4, 5))", {"x": x}))
    assert list(m.state_dict()) == ["op.weight", "op.bias"] and m.op.weight.shape == (4, 5)
    torch.testing.assert_close(m(x), F.layer_norm(x, (4, 5), m.op.weight, m.op.bias, 1e-5))
    inferred = build_op_spec("LayerNorm(bias=false)", {"x": x})
    assert list(inferred.state_dict()) == ["op.weight"] and inferred.op.weight.shape == (5,)
    plain = run_op_spec("LayerNorm(5, elementwise_affine=false, eps=1e-3)", {"x": x})
    torch.testing.assert_close(plain, F.layer_norm(x, (5,), eps=1e-3))


def test_layer_norm2d_normalises_channels_first():
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    m = _randomise(build_op_spec("LayerNorm2d()", {"x": x}))
    assert list(m.state_dict()) == ["op.weight", "op.bias"] and m.op.weight.shape == (6,)
    mean, var = x.mean(1, keepdim=True), x.var(1, keepdim=True, unbiased=False)
    ref = (x - mean) / torch.sqrt(var + 1e-6) * m.op.weight[:, None, None] + m.op.bias[:, None, None]
    torch.testing.assert_close(m(x), ref)
    plain = run_op_spec("LayerNorm2d(elementwise_affine=false, eps=1e-5)", {"x": x})
    torch.testing.assert_close(plain, (x - mean) / torch.sqrt(var + 1e-5))


def test_group_norm():
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    m = _randomise(build_op_spec("GroupNorm(3, eps=1e-4)", {"x": x}))
    assert list(m.state_dict()) == ["op.weight", "op.bias"]
    torch.testing.assert_close(m(x), F.group_norm(x, 3, m.op.weight, m.op.bias, 1e-4))
    torch.testing.assert_close(run_op_spec("GroupNorm(2, affine=false)", {"x": x}), F.group_norm(x, 2))


@pytest.mark.parametrize("body,eps", [("RMSNorm()", None), ("RMSNorm(8, eps=1e-6)", 1e-6)])
def test_rms_norm(body, eps):
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    m = _randomise(build_op_spec(body, {"x": x}))
    assert list(m.state_dict()) == ["op.weight"]
    e = torch.finfo(torch.float64).eps if eps is None else eps
    ref = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + e) * m.op.weight
    torch.testing.assert_close(m(x), ref)
    plain = run_op_spec("RMSNorm(elementwise_affine=false, eps=1e-6)", {"x": x})
    torch.testing.assert_close(plain, x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def test_instance_norm2d_defaults_and_options():
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    m = build_op_spec("InstanceNorm2d()", {"x": x})
    assert not m.state_dict()
    torch.testing.assert_close(m(x), F.instance_norm(x))
    tracked = _randomise(build_op_spec("InstanceNorm2d(affine=true, track_running_stats=true)", {"x": x}))
    assert list(tracked.state_dict()) == BN_NAMES
    s = tracked.op
    ref = F.instance_norm(x, s.running_mean, s.running_var, s.weight, s.bias, use_input_stats=False)
    torch.testing.assert_close(tracked(x), ref)   # eval mode: running statistics


def test_local_response_norm():
    x = torch.randn(2, 7, 3, 3, dtype=torch.float64)
    out = run_op_spec("LocalResponseNorm(5, alpha=1e-3, beta=0.5, k=2.0)", {"x": x})
    torch.testing.assert_close(out, torch.nn.LocalResponseNorm(5, 1e-3, 0.5, 2.0)(x))


def test_norm_init_matches_pytorch_modules():
    x = torch.randn(2, 4, 3, 3)
    m = build_op_spec("GroupNorm(2)", {"x": x}, dtype=torch.float32)
    ref = torch.nn.GroupNorm(2, 4)
    for name, t in ref.state_dict().items():
        torch.testing.assert_close(m.state_dict()[f"op.{name}"], t)


def test_norm_traits_and_param_axes():
    assert lookup("BatchNorm2d").traits >= {Trait.TRAIN_EVAL}
    assert Trait.TRAIN_EVAL not in lookup("LayerNorm").traits
    g = compile_op("LayerNorm2d()", {"x": "N, 6, H, W"})
    assert g.params["op.weight"].axis == "channel" and g.params["op.weight"].shape == (6,)
    g = compile_op("BatchNorm2d()", {"x": "N, 6, H, W"})
    assert g.params["op.num_batches_tracked"].buffer and g.params["op.num_batches_tracked"].dtype == "int64"


NORMS = ["BatchNorm2d()", "LayerNorm2d()", "GroupNorm(2)", "InstanceNorm2d(affine=true)", "LocalResponseNorm(3)",
         "LayerNorm(5)", "RMSNorm(5)"]


@given(body=st.sampled_from(NORMS), n=st.integers(1, 3), h=st.integers(1, 5))
def test_norm_shape_rule_is_identity(body, n, h):
    x = torch.randn(n, 4, h, 5)
    out = check_shape_rule(body, {"x": x}, {"x": "N, 4, H, 5"})
    assert out.shape == x.shape


@pytest.mark.parametrize("body,dims,fragments", [
    ("GroupNorm(3)", {"x": "N, 8, H, W"}, ["8 channels", "num_groups=3"]),
    ("GroupNorm(0)", {"x": "N, 8, H, W"}, ["num_groups", "positive"]),
    ("LayerNorm(7)", {"x": "N, T, 8"}, ["does not end with normalized_shape [7]"]),
    ("LayerNorm()", {"x": "N, T, D"}, ["known last axis"]),
    ("LayerNorm((8, 2))", {"x": "N, 2, 8"}, ["normalized_shape"]),
    ("RMSNorm(0)", {"x": "N, 8"}, ["normalized_shape", "positive"]),
    ("BatchNorm2d()", {"x": "N, 8, L"}, ["rank 4"]),
    ("BatchNorm1d()", {"x": "N, C"}, ["known channel count"]),
    ("BatchNorm2d(eps=-1.0)", {"x": "N, 8, H, W"}, ["eps", "negative"]),
    ("LayerNorm2d()", {"x": "N, 8"}, ["channels-first", "LayerNorm"]),
    ("InstanceNorm2d()", {"x": "N, 8, L"}, ["rank 4"]),
    ("LocalResponseNorm(3)", {"x": "N, 8"}, ["rank 3"]),
    ("LocalResponseNorm(0)", {"x": "N, 8, L"}, ["size", "positive"]),
    ("BatchNorm2d(momentom=0.1)", {"x": "N, 8, H, W"}, ["momentum"]),
])
def test_norm_errors(body, dims, fragments):
    expect_error(body, dims, *fragments)
