"""Interpolation, pixel (un)shuffle, channel shuffle and padding against torch; shape rules; errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from archdsl.ir.dims import SymDim
from archdsl.ops.base import Trait
from archdsl.ops.registry import lookup
from archdsl.ops.resample import Upsample
from tests.ops.helpers import check_shape_rule, compile_op, expect_error, run_op_spec

X = {"x": "N, 8, H, W"}

INTERPOLATE = [
    ("Upsample(scale_factor=2)", {"scale_factor": 2.0}),
    ("interpolate(scale_factor=1.5, mode=\"bilinear\")", {"scale_factor": 1.5, "mode": "bilinear"}),
    ("Upsample(size=(7, 5), mode=\"bilinear\", align_corners=true)",
     {"size": (7, 5), "mode": "bilinear", "align_corners": True}),
    ("Upsample(scale_factor=(0.5, 2), mode=\"nearest-exact\")", {"scale_factor": (0.5, 2.0), "mode": "nearest-exact"}),
    ("Upsample(4, mode=\"bicubic\", align_corners=false)", {"size": 4, "mode": "bicubic", "align_corners": False}),
    ("Upsample(size=3, mode=\"area\")", {"size": 3, "mode": "area"}),
]


@pytest.mark.parametrize("body,kw", INTERPOLATE, ids=[b for b, _ in INTERPOLATE])
def test_interpolate_matches_functional(body, kw):
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(run_op_spec(body, {"x": x}), F.interpolate(x, **kw))


def test_linear_interpolate_1d():
    x = torch.randn(2, 3, 7, dtype=torch.float64)
    out = run_op_spec("Upsample(scale_factor=3, mode=\"linear\", align_corners=true)", {"x": x})
    torch.testing.assert_close(out, F.interpolate(x, scale_factor=3.0, mode="linear", align_corners=True))


def test_pixel_shuffle_unshuffle_and_channel_shuffle():
    x = torch.randn(2, 8, 4, 6, dtype=torch.float64)
    torch.testing.assert_close(run_op_spec("PixelShuffle(2)", {"x": x}), F.pixel_shuffle(x, 2))
    torch.testing.assert_close(run_op_spec("PixelUnshuffle(2)", {"x": x}), F.pixel_unshuffle(x, 2))
    for g in (2, 4, 8):
        torch.testing.assert_close(run_op_spec(f"ChannelShuffle({g})", {"x": x}), torch.nn.ChannelShuffle(g)(x))
    flat = torch.arange(6.0, dtype=torch.float64).reshape(1, 6)
    assert run_op_spec("ChannelShuffle(2)", {"x": flat}).tolist() == [[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]]


@pytest.mark.parametrize("body,pads,kw", [
    ("Pad(1)", (1, 1, 1, 1), {}),
    ("Pad((1, 2, 0, 3), value=-1.5)", (1, 2, 0, 3), {"value": -1.5}),
    ("Pad((2, 1, 1, 0), mode=\"reflect\")", (2, 1, 1, 0), {"mode": "reflect"}),
    ("Pad((0, 1, 0, 1), mode=\"replicate\")", (0, 1, 0, 1), {"mode": "replicate"}),
    ("Pad((1, 1, 2, 0), \"circular\")", (1, 1, 2, 0), {"mode": "circular"}),
    ("Pad((-1, 1, 0, 0, 1, 0))", (-1, 1, 0, 0, 1, 0), {}),                       # crop W, pad channels
])
def test_pad_matches_functional(body, pads, kw):
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(run_op_spec(body, {"x": x}), F.pad(x, pads, **kw))


def test_resample_traits():
    assert Trait.LINEAR in lookup("Upsample").traits and lookup("interpolate") is Upsample
    assert {Trait.LINEAR, Trait.SHAPE_ONLY} <= lookup("ChannelShuffle").traits
    assert Trait.AFFINE in lookup("Pad").traits


def test_symbolic_scale_and_shuffle_shapes():
    h = SymDim.symbol("H")
    g = compile_op("Upsample(scale_factor=1.5)", X)
    assert g.value_types()[g.outputs["out"]].shape[2] == h * 3 // 2
    g = compile_op("PixelUnshuffle(2)", X)
    assert g.value_types()[g.outputs["out"]].shape[1:3] == (32, h // 2)
    g = compile_op("Pad((1, 2, 3, 4))", X)
    assert g.value_types()[g.outputs["out"]].shape[2] == h + 7


@given(scale=st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, 0.25, 2.5]), h=st.integers(1, 12), w=st.integers(1, 12),
       mode=st.sampled_from(["nearest", "bilinear"]))
def test_interpolate_shape_rule(scale, h, w, mode):
    assume(int(h * scale) > 0 and int(w * scale) > 0)
    check_shape_rule(f"Upsample(scale_factor={scale}, mode=\"{mode}\")", {"x": torch.randn(1, 8, h, w)}, X)


@given(r=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4), g=st.sampled_from([1, 2, 4, 8]))
def test_shuffle_shape_rules(r, h, w, g):
    check_shape_rule(f"PixelShuffle({r})", {"x": torch.randn(1, 8 * r * r, h, w)}, {"x": f"N, {8 * r * r}, H, W"})
    check_shape_rule(f"PixelUnshuffle({r})", {"x": torch.randn(2, 8, h * r, w * r)}, X)
    check_shape_rule(f"ChannelShuffle({g})", {"x": torch.randn(2, 8, h, w)}, X)


@given(pads=st.lists(st.integers(0, 3), min_size=2, max_size=6).filter(lambda p: len(p) % 2 == 0),
       mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]), h=st.integers(4, 7))
def test_pad_shape_rule(pads, mode, h):
    names = ("D", "H", "W")[3 - len(pads) // 2:]          # non-constant modes pad every axis after C
    x = torch.randn(1, 3, *(h + i for i in range(len(names))))
    check_shape_rule(f"Pad({tuple(pads)}, mode=\"{mode}\")", {"x": x}, {"x": ", ".join(("N", "3") + names)})


@pytest.mark.parametrize("body,dims,fragments", [
    ("Upsample()", X, ["exactly one of size and scale_factor"]),
    ("Upsample(4, scale_factor=2)", X, ["exactly one"]),
    ("Upsample(scale_factor=2, align_corners=true)", X, ["align_corners", "nearest"]),
    ("Upsample(scale_factor=2, mode=\"bilinear\")", {"x": "N, 8, L"}, ["'bilinear'", "rank 4"]),
    ("Upsample(scale_factor=2, mode=\"cubic\")", X, ["mode"]),
    ("Upsample(scale_factor=-2)", X, ["positive"]),
    ("Upsample(scale_factor=0.3)", X, ["no exact integer form"]),
    ("Upsample(size=(2, 3, 4))", X, ["3 values for 2 spatial axes"]),
    ("PixelShuffle(2)", {"x": "N, 6, H, W"}, ["channel count 6", "upscale_factor**2 = 4"]),
    ("PixelShuffle(2)", {"x": "N, C, H, W"}, ["must be known to be divisible"]),
    ("PixelUnshuffle(2)", {"x": "N, 3, 5, 4"}, ["divisible by downscale_factor=2"]),
    ("PixelUnshuffle(0)", X, ["positive"]),
    ("ChannelShuffle(3)", X, ["channel count 8", "groups=3"]),
    ("Pad((1, 2, 3))", X, ["pairs"]),
    ("Pad((1, -1), mode=\"reflect\")", X, ["negative pads", "constant"]),
    ("Pad(1, mode=\"reflect\", value=2.0)", X, ["takes no fill value"]),
    ("Pad((3, 0), mode=\"reflect\")", {"x": "N, 8, 3"}, ["reflect padding", "smaller than the input size 3"]),
    ("Pad((1, 1, 1, 1, 1, 1, 1, 1), mode=\"replicate\")", {"x": "N, 8, D, H, W"}, ["every spatial axis"]),
    ("Pad((-3, -3))", {"x": "N, 8, H, 6"}, ["leave nothing"]),
    ("Pad((1, 1, 1, 1, 1, 1))", {"x": "N, 8"}, ["6 pads for a tensor of rank 2"]),
])
def test_resample_errors(body, dims, fragments):
    expect_error(body, dims, *fragments)
