"""Convolutions against torch.nn.functional with the built module's own weights; shape rules; errors."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

import archdsl
from archdsl.ops.base import Trait
from archdsl.ops.conv import Conv2d, ConvTranspose2d
from tests.ops.helpers import build_op_spec, check_shape_rule, compile_op, expect_error

X4 = {"x": "N, 4, H, W"}


def _conv(x, m, **kw):
    with warnings.catch_warnings():   # torch warns that 'same' with an even kernel copies the input
        warnings.simplefilter("ignore", UserWarning)
        return F.conv2d(x, m.op.weight, m.op.bias, **kw)


CONV2D = [
    ("Conv2d(6, 3)", lambda x, m: _conv(x, m)),
    ("Conv2d(6, 3, stride=2, padding=1)", lambda x, m: _conv(x, m, stride=2, padding=1)),
    ("Conv2d(6, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 1))",
     lambda x, m: _conv(x, m, stride=(2, 1), padding=(1, 2), dilation=(2, 1))),
    ("Conv2d(6, 3, groups=2, bias=false)", lambda x, m: F.conv2d(x, m.op.weight, None, groups=2)),
    ("Conv2d(4, 3, groups=4, padding=1)", lambda x, m: _conv(x, m, padding=1, groups=4)),   # depthwise
    ("Conv2d(8, 3, groups=4, padding=1)", lambda x, m: _conv(x, m, padding=1, groups=4)),   # depth multiplier 2
    ("Conv2d(6, 3, padding=\"same\", dilation=2)", lambda x, m: _conv(x, m, padding="same", dilation=2)),
    ("Conv2d(6, 4, padding=\"same\")", lambda x, m: _conv(x, m, padding="same")),             # even kernel
    ("Conv2d(6, 3, padding=\"valid\")", lambda x, m: _conv(x, m, padding="valid")),
    ("Conv2d(6, 3, stride=2, padding=((0, 1), (0, 1)))", lambda x, m: _conv(F.pad(x, (0, 1, 0, 1)), m, stride=2)),
    ("Conv2d(6, 3, padding=(1, 2, 0, 1))", lambda x, m: _conv(F.pad(x, (0, 1, 1, 2)), m)),
    ("Conv2d(6, 3, padding=1, padding_mode=\"reflect\")", lambda x, m: _conv(F.pad(x, (1,) * 4, mode="reflect"), m)),
    ("Conv2d(6, 3, padding=2, padding_mode=\"replicate\")",
     lambda x, m: _conv(F.pad(x, (2,) * 4, mode="replicate"), m)),
    ("Conv2d(6, 3, padding=\"same\", padding_mode=\"circular\")",
     lambda x, m: _conv(F.pad(x, (1,) * 4, mode="circular"), m)),
    ("Conv2d(6, 3, padding=((1, 2), (0, 1)), padding_mode=\"reflect\")",
     lambda x, m: _conv(F.pad(x, (0, 1, 1, 2), mode="reflect"), m)),
]


@pytest.mark.parametrize("body,ref", CONV2D, ids=[b for b, _ in CONV2D])
def test_conv2d_matches_functional(body, ref):
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    m = build_op_spec(body, {"x": x})
    torch.testing.assert_close(m(x), ref(x, m))
    names = {"op.weight", "op.bias"} if "bias=false" not in body else {"op.weight"}
    assert set(m.state_dict()) == names


def test_conv1d_and_conv3d_match_functional():
    x1 = torch.randn(2, 3, 11, dtype=torch.float64)
    m1 = build_op_spec("Conv1d(5, 3, stride=2, padding=((2, 0),), dilation=2)", {"x": x1})
    torch.testing.assert_close(m1(x1), F.conv1d(F.pad(x1, (2, 0)), m1.op.weight, m1.op.bias, stride=2, dilation=2))
    x3 = torch.randn(1, 2, 5, 6, 4, dtype=torch.float64)
    m3 = build_op_spec("Conv3d(4, (1, 3, 3), padding=\"same\", padding_mode=\"replicate\")", {"x": x3})
    ref = F.conv3d(F.pad(x3, (1, 1, 1, 1, 0, 0), mode="replicate"), m3.op.weight, m3.op.bias)
    torch.testing.assert_close(m3(x3), ref)


@pytest.mark.parametrize("body,kw", [
    ("ConvTranspose2d(6, 3, stride=2, padding=1, output_padding=1)", {"stride": 2, "padding": 1, "output_padding": 1}),
    ("ConvTranspose2d(6, 4, stride=2, groups=2, bias=false)", {"stride": 2, "groups": 2}),
    ("ConvTranspose2d(3, 3, dilation=2, padding=(1, 2))", {"dilation": 2, "padding": (1, 2)}),
])
def test_conv_transpose2d_matches_functional(body, kw):
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    m = build_op_spec(body, {"x": x})
    torch.testing.assert_close(m(x), F.conv_transpose2d(x, m.op.weight, m.op.bias, **kw))
    assert m.op.weight.shape[0] == 4   # (in, out/groups, kh, kw)


def test_conv_init_and_state_dict_are_pytorchs():
    x = torch.randn(1, 4, 6, 6)
    m = build_op_spec("Conv2d(8, 3, groups=2)", {"x": x}, dtype=torch.float32, seed=3)
    torch.manual_seed(3)
    ref = torch.nn.Conv2d(4, 8, 3, groups=2)
    assert list(m.state_dict()) == ["op.weight", "op.bias"]
    torch.testing.assert_close(m.op.weight, ref.weight)
    torch.testing.assert_close(m.op.bias, ref.bias)


def test_conv_declares_params_traits_and_macs():
    g = compile_op("Conv2d(8, 3, groups=2, padding=1)", {"x": "N, 4, 10, 10"})
    assert g.params["op.weight"].shape == (8, 2, 3, 3) and g.params["op.bias"].axis == "channel"
    node = g.nodes[0]
    assert isinstance(node.op, Conv2d) and node.op.has(Trait.AFFINE)
    ins = [g.inputs["x"]]
    assert node.op.cost(ins, list(node.types)).macs == 8 * 10 * 10 * 2 * 9 * g.inputs["x"].shape[0]
    t = compile_op("ConvTranspose2d(6, 3, stride=2)", {"x": "N, 4, H, W"}).nodes[0]
    assert isinstance(t.op, ConvTranspose2d) and t.op.params([t.types[0].with_shape((1, 4, 2, 2))])


@given(k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2), p=st.integers(0, 2),
       g=st.sampled_from([1, 2, 4]), h=st.integers(1, 12), w=st.integers(1, 12),
       mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
def test_conv2d_shape_rule(k, s, d, p, g, h, w, mode):
    assume(h + 2 * p >= d * (k - 1) + 1 and w + 2 * p >= d * (k - 1) + 1)
    assume(mode == "zeros" or p < min(h, w))
    x = torch.randn(1, 4, h, w)
    check_shape_rule(f"Conv2d(4, {k}, stride={s}, dilation={d}, padding={p}, groups={g}, "
                     f"padding_mode=\"{mode}\")", {"x": x}, X4)


@given(k=st.integers(1, 5), d=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9))
def test_conv2d_same_padding_shape_rule(k, d, h, w):
    out = check_shape_rule(f"Conv2d(3, {k}, padding=\"same\", dilation={d})", {"x": torch.randn(2, 4, h, w)}, X4)
    assert out.shape[2:] == (h, w)


@given(k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2), p=st.integers(0, 1), op=st.integers(0, 2),
       h=st.integers(1, 6))
def test_conv_transpose2d_shape_rule(k, s, d, p, op, h):
    assume(op < max(s, d) and (h - 1) * s - 2 * p + d * (k - 1) + op + 1 > 0)
    body = f"ConvTranspose2d(2, {k}, stride={s}, dilation={d}, padding={p}, output_padding={op})"
    check_shape_rule(body, {"x": torch.randn(1, 4, h, h + 1)}, X4)


@pytest.mark.parametrize("body,dims,fragments", [
    ("Conv2d(6, 3, groups=3)", X4, ["in_channels=4", "divisible by groups=3"]),
    ("Conv2d(6, 3, groups=4)", X4, ["out_channels=6", "groups=4"]),
    ("Conv2d(6, 5)", {"x": "N, 4, 3, 3"}, ["too small"]),
    ("Conv2d(6, 3, padding=\"full\")", X4, ["padding", "same"]),
    ("Conv2d(6, 0)", X4, ["kernel_size", "positive"]),
    ("Conv2d(6, 3, stride=-1)", X4, ["stride", "positive"]),
    ("Conv2d(6, 3, padding=-1)", X4, ["padding", "negative"]),
    ("Conv2d(6, 3, padding=3, padding_mode=\"reflect\")", {"x": "N, 4, 3, 3"}, ["reflect padding", "smaller"]),
    ("Conv2d(6, 3, padding=\"same\", stride=2)", X4, ["needs a known input size"]),
    ("Conv2d(6, (3, 3, 3))", X4, ["kernel_size needs 2 values"]),
    ("Conv2d(6, 3)", {"x": "N, 4, H"}, ["rank 4"]),
    ("Conv2d(6, 3)", {"x": "N, C, H, W"}, ["known channel count"]),
    ("Conv2d(6, 3, padding_mode=\"wrap\")", X4, ["padding_mode"]),
    ("ConvTranspose2d(6, 3, padding=1, padding_mode=\"reflect\")", X4, ["padding_mode='zeros'"]),
    ("ConvTranspose2d(6, 3, output_padding=1)", X4, ["output_padding", "smaller"]),
    ("ConvTranspose2d(6, 3, padding=((0, 1), (0, 1)))", X4, ["symmetric"]),
])
def test_conv_errors(body, dims, fragments):
    expect_error(body, dims, *fragments)


def test_conv_error_points_at_the_layer():
    err = expect_error("Conv2d(6, 3, groups=3)", X4, cls=archdsl.ShapeError)
    assert err.diagnostics[0].span is not None and err.diagnostics[0].span.line == 3
