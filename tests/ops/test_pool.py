"""Pooling against torch.nn.functional; PyTorch's ceil_mode rule on symbolic sizes; errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from archdsl.ir.dims import SymDim
from archdsl.ops.base import Trait
from archdsl.ops.pool import pool_out_size
from archdsl.ops.registry import lookup
from tests.ops.helpers import check_shape_rule, compile_op, expect_error, run_op_spec

WINDOWED = [
    ("MaxPool2d(3, stride=2, padding=1)", lambda x: F.max_pool2d(x, 3, 2, 1)),
    ("MaxPool2d(2)", lambda x: F.max_pool2d(x, 2)),
    ("MaxPool2d(3, 2, ceil_mode=true)", lambda x: F.max_pool2d(x, 3, 2, ceil_mode=True)),
    ("MaxPool2d((2, 3), stride=1, dilation=2)", lambda x: F.max_pool2d(x, (2, 3), 1, dilation=2)),
    ("AvgPool2d(3, 2, 1)", lambda x: F.avg_pool2d(x, 3, 2, 1)),
    ("AvgPool2d(3, 2, 1, count_include_pad=false)", lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)),
    ("AvgPool2d(2, ceil_mode=true)", lambda x: F.avg_pool2d(x, 2, ceil_mode=True)),
    ("AvgPool2d((3, 1), stride=(1, 2), padding=(1, 0))", lambda x: F.avg_pool2d(x, (3, 1), (1, 2), (1, 0))),
]


@pytest.mark.parametrize("body,ref", WINDOWED, ids=[b for b, _ in WINDOWED])
def test_pool2d_matches_functional(body, ref):
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    torch.testing.assert_close(run_op_spec(body, {"x": x}), ref(x))


def test_pool1d_matches_functional():
    x = torch.randn(2, 3, 11, dtype=torch.float64)
    torch.testing.assert_close(run_op_spec("MaxPool1d(3, 2, 1, ceil_mode=true)", {"x": x}),
                               F.max_pool1d(x, 3, 2, 1, ceil_mode=True))
    torch.testing.assert_close(run_op_spec("AvgPool1d(4, 3, 2, count_include_pad=false)", {"x": x}),
                               F.avg_pool1d(x, 4, 3, 2, count_include_pad=False))


@pytest.mark.parametrize("body,ref", [
    ("AdaptiveAvgPool2d(1)", lambda x: F.adaptive_avg_pool2d(x, 1)),
    ("AdaptiveAvgPool2d((3, 2))", lambda x: F.adaptive_avg_pool2d(x, (3, 2))),
    ("AdaptiveAvgPool2d((none, 4))", lambda x: F.adaptive_avg_pool2d(x, (None, 4))),
    ("AdaptiveMaxPool2d((5, 3))", lambda x: F.adaptive_max_pool2d(x, (5, 3))),
    ("GlobalAvgPool", lambda x: x.mean((2, 3))),
    ("GlobalAvgPool(keepdim=true)", lambda x: x.mean((2, 3), keepdim=True)),
    ("GlobalMaxPool", lambda x: x.amax((2, 3))),
])
def test_adaptive_and_global_pool(body, ref):
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    torch.testing.assert_close(run_op_spec(body, {"x": x}), ref(x))


def test_adaptive_and_global_pool_1d():
    x = torch.randn(2, 3, 10, dtype=torch.float64)
    torch.testing.assert_close(run_op_spec("AdaptiveAvgPool1d(3)", {"x": x}), F.adaptive_avg_pool1d(x, 3))
    torch.testing.assert_close(run_op_spec("AdaptiveMaxPool1d(4)", {"x": x}), F.adaptive_max_pool1d(x, 4))
    torch.testing.assert_close(run_op_spec("GlobalMaxPool(keepdim=true)", {"x": x}), x.amax(2, keepdim=True))


def test_adaptive_output_is_the_requested_size_for_symbolic_inputs():
    g = compile_op("AdaptiveAvgPool2d((7, none))", {"x": "N, 3, H, W"})
    n, c, h, w = g.value_types()[g.outputs["out"]].shape
    assert (c, h) == (3, 7) and w == SymDim.symbol("W") and n == SymDim.symbol("N")
    g = compile_op("GlobalAvgPool", {"x": "N, 3, H, W"})
    assert g.value_types()[g.outputs["out"]].shape[1:] == (3,)


def test_pool_traits():
    assert Trait.HOMOGENEOUS in lookup("MaxPool2d").traits and Trait.LINEAR in lookup("avg_pool1d").traits
    assert Trait.LINEAR in lookup("GlobalAvgPool").traits and Trait.HOMOGENEOUS in lookup("AdaptiveMaxPool2d").traits


def test_ceil_mode_drops_a_window_starting_in_the_padding():
    # PyTorch: ceil((5 + 2 - 2) / 2) + 1 = 4 windows would start at 0, 2, 4, 6; 6 lies in the right padding.
    assert pool_out_size(5, 2, 2, 1, 1, True) == 3 == F.max_pool1d(torch.randn(1, 1, 5), 2, 2, 1, ceil_mode=True).shape[-1]
    h = SymDim.symbol("H")
    assert pool_out_size(h, 3, 2, 1, 0, True) == (h - 2) // 2 + 1


@given(k=st.integers(1, 5), s=st.integers(1, 4), p=st.integers(0, 2), d=st.integers(1, 2), ceil=st.booleans(),
       h=st.integers(1, 16), w=st.integers(1, 16), kind=st.sampled_from(["MaxPool2d", "AvgPool2d"]))
def test_pool2d_shape_rule(k, s, p, d, ceil, h, w, kind):
    assume(2 * p <= k and min(h, w) + 2 * p >= d * (k - 1) + 1)
    dil = f", dilation={d}" if kind == "MaxPool2d" else ""
    body = f"{kind}({k}, stride={s}, padding={p}, ceil_mode={str(ceil).lower()}{dil})"
    check_shape_rule(body, {"x": torch.randn(1, 2, h, w)}, {"x": "N, 2, H, W"})


@given(k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), ceil=st.booleans(), length=st.integers(1, 12))
def test_pool1d_shape_rule(k, s, p, ceil, length):
    assume(2 * p <= k and length + 2 * p >= k)
    body = f"AvgPool1d({k}, {s}, {p}, ceil_mode={str(ceil).lower()})"
    check_shape_rule(body, {"x": torch.randn(2, 3, length)}, {"x": "N, 3, L"})


@given(oh=st.integers(1, 5), ow=st.integers(1, 5), h=st.integers(1, 9), w=st.integers(1, 9), keep=st.booleans(),
       kind=st.sampled_from(["AdaptiveAvgPool2d", "AdaptiveMaxPool2d"]))
def test_adaptive_and_global_shape_rule(oh, ow, h, w, keep, kind):
    x = torch.randn(2, 3, h, w)
    check_shape_rule(f"{kind}(({oh}, {ow}))", {"x": x}, {"x": "N, 3, H, W"})
    check_shape_rule(f"GlobalAvgPool(keepdim={str(keep).lower()})", {"x": x}, {"x": "N, C, H, W"})


@pytest.mark.parametrize("body,dims,fragments", [
    ("MaxPool2d(3, padding=2)", {"x": "N, 3, H, W"}, ["padding", "half the kernel"]),
    ("MaxPool2d(5)", {"x": "N, 3, 4, 4"}, ["too small"]),
    ("MaxPool2d(0)", {"x": "N, 3, H, W"}, ["kernel_size", "positive"]),
    ("MaxPool2d(2, dilation=0)", {"x": "N, 3, H, W"}, ["dilation", "positive"]),
    ("AvgPool2d(2, dilation=2)", {"x": "N, 3, H, W"}, ["no argument 'dilation'"]),
    ("MaxPool2d(2)", {"x": "N, L"}, ["rank 4 or 3"]),
    ("MaxPool1d((2, 2))", {"x": "N, 3, L"}, ["kernel_size needs 1 values"]),
    ("AdaptiveAvgPool2d(0)", {"x": "N, 3, H, W"}, ["output_size", "positive"]),
    ("AdaptiveAvgPool2d((1, 2, 3))", {"x": "N, 3, H, W"}, ["output_size needs 2 values"]),
    ("GlobalAvgPool", {"x": "N, 3"}, ["at least one spatial axis"]),
])
def test_pool_errors(body, dims, fragments):
    expect_error(body, dims, *fragments)
