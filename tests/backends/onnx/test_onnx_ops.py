"""Every op lowered to ONNX runs in onnxruntime with the PyTorch backend's outputs (float32, rel. error <= 1e-5).

Each case is a small model over symbolic inputs; sizes are bound only when the model runs, so the exported
graphs are checked with their dynamic dims. A completeness test keeps the table covering every op class.
"""

from __future__ import annotations

import functools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("onnxruntime")

import archdsl  # noqa: E402
from archdsl.backends.onnx import OPSETS, missing, to_onnx  # noqa: E402
from archdsl.backends.onnx.parity import onnx_parity  # noqa: E402
from archdsl.ops.registry import all_ops  # noqa: E402

X4 = "in x: [N, 4, H, W]"
X3 = "in x: [N, 4, L]"
SEQ = "in x: [N, T, 8]"
QKV = "in q: [N, 2, T, 4]\n in k: [N, 2, S, 4]\n in v: [N, 2, S, 3]"

# (inputs, body): every op class appears in at least one case (checked below)
CASES = [
    (X3, "c = Conv1d(6, 3, padding=1, stride=2)\n out x |> c"),
    (X4, "c = Conv2d(6, 3, stride=2, padding=1)\n out x |> c"),
    (X4, "c = Conv2d(6, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 1))\n out x |> c"),
    (X4, "c = Conv2d(8, 3, groups=4, padding=1, bias=false)\n out x |> c"),
    (X4, "c = Conv2d(6, 4, padding=\"same\")\n out x |> c"),
    (X4, "c = Conv2d(6, 3, stride=2, padding=((0, 1), (1, 2)))\n out x |> c"),
    (X4, "c = Conv2d(6, 3, padding=((1, 2), (0, 1)), padding_mode=\"reflect\")\n out x |> c"),
    (X4, "c = Conv2d(6, 3, padding=2, padding_mode=\"replicate\")\n out x |> c"),
    (X4, "c = Conv2d(6, 3, padding=\"same\", padding_mode=\"circular\")\n out x |> c"),
    ("in x: [N, 2, D, H, W]", "c = Conv3d(3, 3, padding=1)\n out x |> c"),
    (X4, "c = ConvTranspose2d(3, 3, stride=2, padding=1, output_padding=1)\n out x |> c"),
    (X4, "c = ConvTranspose2d(4, 2, stride=2, groups=2, dilation=2)\n out x |> c"),
    (SEQ, "fc = Linear(5)\n out x |> fc"),
    ("in x: [N, 8]", "fc = Linear(3, bias=false)\n out x |> fc"),
    ("in a: [N, 4]\n in b: [N, 6]", "bil = Bilinear(3)\n out bil(a, b)"),
    ("in s: [V, V]\n in x: [V, 6]", "g = GraphConv(3, hops=2)\n out g(s, x)"),
    ("in x: [N, 4]", "bn = BatchNorm1d()\n out x |> bn"),
    (X3, "bn = BatchNorm1d(affine=false)\n out x |> bn"),
    (X4, "bn = BatchNorm2d()\n out x |> bn"),
    (X4, "bn = BatchNorm2d(track_running_stats=false)\n out x |> bn"),
    ("in x: [N, 3, D, H, W]", "bn = BatchNorm3d()\n out x |> bn"),
    (SEQ, "ln = LayerNorm()\n out x |> ln"),
    ("in x: [N, 4, 5]", "ln = LayerNorm((4, 5), elementwise_affine=false, eps=1e-3)\n out x |> ln"),
    (X4, "ln = LayerNorm2d()\n out x |> ln"),
    (X4, "gn = GroupNorm(2)\n out x |> gn"),
    (SEQ, "n = RMSNorm()\n out x |> n"),
    (SEQ, "n = RMSNorm(elementwise_affine=false, eps=1e-6)\n out x |> n"),
    (X4, "n = InstanceNorm2d()\n out x |> n"),
    (X4, "n = InstanceNorm2d(affine=true)\n out x |> n"),
    (X4, "n = LocalResponseNorm(3)\n out x |> n"),
    (X3, "n = LocalResponseNorm(4, alpha=1e-2, beta=0.5, k=2.0)\n out x |> n"),
    (X4, "out relu(x) + relu6(x * 4) + leaky_relu(x, 0.2) + elu(x, alpha=0.5)"),
    (X4, "out gelu(x) + gelu(x, approximate=\"tanh\") + silu(x) + mish(x)"),
    (X4, "out sigmoid(x) + hardsigmoid(x * 4) + hardswish(x * 4) + tanh(x)"),
    (X4, "out softplus(x * 4, beta=2.0, threshold=1.0) + softplus(x) + logsigmoid(x * 30)"),
    (X4, "p = PReLU()\n q = PReLU(4, init=0.1)\n out (x |> p) + (x |> q)"),
    (X4, "out softmax(x, dim=1) + log_softmax(x, -1)"),
    (X3, "p = MaxPool1d(3, 2, 1)\n out x |> p"),
    (X4, "p = MaxPool2d(3, 2, ceil_mode=true)\n out x |> p"),
    (X4, "p = MaxPool2d((2, 3), stride=1, dilation=2)\n out x |> p"),
    (X4, "p = AvgPool2d(3, 2, 1, count_include_pad=false)\n out x |> p"),
    (X4, "p = AvgPool2d(3, 2, 1)\n out x |> p"),
    (X3, "p = AvgPool1d(4, 3, 2, count_include_pad=false)\n out x |> p"),
    (X4, "p = AdaptiveAvgPool2d(1)\n out x |> p"),
    (X4, "p = AdaptiveAvgPool2d((3, 2))\n out x |> p"),
    ("in x: [N, 4, 12, 12]", "p = AdaptiveAvgPool2d((3, 4))\n out x |> p"),
    (X3, "p = AdaptiveAvgPool1d(3)\n out x |> p"),
    (X3, "p = AdaptiveMaxPool1d(3)\n out x |> p"),
    (X4, "p = AdaptiveMaxPool2d((2, none))\n out x |> p"),
    (X4, "out x |> GlobalAvgPool(keepdim=true) |> GlobalMaxPool"),
    ("in x: [N, 4, H, W]\n in y: [N, 4, 1, W]", "out add_n([x - y, x * y, x / (y * y + 1)]) + add_n([x])"),
    (X4, "out (x + 2) * (2 - x) - x / 4 + (1 / (x * x + 1)) + x ** 2 + (-x) - 3 * x"),
    ("in q: [N, 2, T, 4]\n in k: [N, 2, S, 4]", "out matmul(q, transpose(k, 2, 3))"),
    (X4, "out mean(x, dim=(2, 3)) + reduce_sum(x, (2, 3)) + flatten(mean(x, (-1, -2), true))"),
    (X4, "out flatten(x, 2) |> flatten(0, 1)"),
    (X4, "out reshape(x, (N, 4, H*W))"),
    (X4, "out reshape(x, (N, 2, 2, H, W)) |> reshape((N, -1))"),
    (X4, "out reshape(x, (-1, W))"),
    (X4, "out expand(unsqueeze(x, 1), (N, 3, 4, H, W))"),
    (X4, "out expand(x, (2, -1, -1, -1, -1))"),
    (X4, "out expand_as(mean(x, (2, 3), true), x) + expand_as(reduce_sum(x, 0, true), x, 0)"),
    (X4, "out permute(x, (0, 2, 3, 1)) |> transpose(1, -1)"),
    (X4, "out squeeze(unsqueeze(x, 2), 2) + squeeze(unsqueeze(x, -1))"),
    (X4, "a, b, c = split(x, (1, 2, 1), dim=1)\n out concat([c, a, b], 1)"),
    (X4, "a, b = chunk(x, 2, 1)\n c, d = split(x, 2, dim=1)\n out a * b + c - d"),
    ("in x: [N, 4, H, 6]", "a, b = chunk(x, 2, dim=3)\n out a * b"),
    (X4, "out slice(x, 1, 1, 4, 2) + slice(x, 1, 0, -1, 2)"),
    (X4, "out slice(x, dim=3, start=1) + slice(x, 3, none, -1)"),
    (X4, "out select(x, 1, -1) + identity(select(x, 1, 0))"),
    (QKV, "out scaled_dot_product_attention(q, k, v, scale=0.3)"),
    ("in q: [N, 2, T, 4]\n in k: [N, 2, T, 4]\n in v: [N, 2, T, 3]",
     "out scaled_dot_product_attention(q, k, v, is_causal=true)"),
    ("in q: [N, 2, 5, 4]\n in k: [N, 2, 7, 4]\n in v: [N, 2, 7, 3]",
     "out scaled_dot_product_attention(q, k, v, is_causal=true)"),
    (SEQ, "a = MultiheadSelfAttention(2)\n out x |> a"),
    (SEQ, "a = MultiheadSelfAttention(4, bias=false)\n out x |> a"),
    ("in x: [N, T, 2, 8]", "out rotary(x) + rotary(x, interleaved=true, base=500.0)"),
    ("in x: [N, T, 2, 8]", "out rotary(x, rotary_dim=4) + rotary(x, rotary_dim=6, interleaved=true)"),
    ("in ids: int64[N, T]", "tok = Embedding(10, 8, padding_idx=0)\n out ids |> tok"),
    (SEQ, "pos = Parameter((1, 1, 8), \"normal(std=0.5)\")\n out x + pos"),
    (X4, "out normalize(x, 1) + normalize(x, (2, 3), p=1.0) + normalize(x, -1, p=3.0, eps=1e-3)"),
    (X4, "u = Upsample(scale_factor=2)\n out x |> u"),
    (X4, "u = Upsample(scale_factor=1.5, mode=\"bilinear\")\n out x |> u"),
    (X4, "u = Upsample(size=(7, 5), mode=\"bilinear\", align_corners=true)\n out x |> u"),
    (X4, "u = Upsample(scale_factor=(0.5, 2), mode=\"nearest-exact\")\n out x |> u"),
    (X4, "u = Upsample(size=5, mode=\"bicubic\")\n out x |> u"),
    ("in x: [N, 4, 9, 7]", "u = Upsample(size=(4, 3), mode=\"area\")\n out x |> u"),
    (X3, "u = Upsample(scale_factor=3, mode=\"linear\", align_corners=true)\n out x |> u"),
    ("in x: [N, 2, D, H, W]", "u = Upsample(scale_factor=2, mode=\"trilinear\")\n out x |> u"),
    (X4, "s = PixelShuffle(2)\n out x |> s"),
    (X4, "s = PixelUnshuffle(2)\n out x |> s"),
    (X4, "s = ChannelShuffle(2)\n out x |> s"),
    (X4, "p = Pad((1, 2, 0, 3), value=-1.5)\n out x |> p"),
    (X4, "p = Pad((2, 1, 1, 0), mode=\"reflect\")\n out x |> p"),
    (X4, "p = Pad((0, 1, 0, 1), mode=\"replicate\")\n out x |> p"),
    (X4, "p = Pad((1, 2, 2, 1), mode=\"circular\")\n out x |> p"),
    (X4, "p = Pad((-1, 1, 0, 0, 1, 0))\n out x |> p"),
    (X4, "d = Dropout(0.3)\n e = Dropout2d(0.2)\n s = StochasticDepth(0.4)\n out x |> d |> e |> s"),
    (X4, "a = LayerScale(0.1, dim=1)\n out x |> a"),
    (SEQ, "a = LayerScale(0.5)\n out x |> a"),
    # constructors, buffers and index ops (archdsl/ops/construct.py, index.py, compare.py)
    ("in x: [N, 4, 4]", "z = zeros((4, 4))\n o = ones((4,))\n f = full((4, 4), 0.5)\n e = eye(4)\n"
     " a = arange(0.0, 1.0, 0.25)\n out x + z + o + f * e + a"),
    (X4, "r = arange(3)\n idx = Buffer(persistent=false)\n i = reshape(r, (3, 1)) |> idx\n"
     " out index_select(index_select(x, r, 1), i, 3)"),
    ("in x: [N, 2, 16, 16]", "p = arange(4)\n d = absolute(reshape(p, (4, 1, 1, 1)) - reshape(p, (1, 1, 4, 1))) * 4"
     " + absolute(reshape(p, (1, 4, 1, 1)) - reshape(p, (1, 1, 1, 4)))\n idxs = Buffer()\n"
     " i = reshape(d, (16, 16)) |> idxs\n biases = Parameter((2, 16), \"normal(std=1)\")\n"
     " out x + index_select(biases, i, 1)"),
    ("in x: [N, 4, 5]", "r = arange(4, -1, -1)\n out gather(x, expand(reshape(r, (1, 1, 5)), (N, 4, 5)), 2)"),
    (X4, "out roll(x, (1, -2), (2, 3)) + roll(x, 5, 1)"),
    (X4, "out where(gt(x, 0.0), x, other=0.5) + where(lt(x, 0.1), input=1.0, other=-1.0) + where(ge(x, x * 2), x, -x)"),
    (X4, "r = arange(4)\n c = reshape(r, (4, 1, 1))\n m = full((4, 1, 1), 2)\n"
     " out where(eq(c, 2), x, other=0.0) + where(ne(c, m), x, -x) + where(le(c, 1), input=2.0, other=0.0)"),
    (X4, "out absolute(x) + clamp(x, -0.5, 0.5) + clamp(x, min=0.1) + clamp(x, max=0.2)"),
    (X4, "out cumsum(x, 2) + tril(x) + triu(x, 1) + tril(x, -1)"),
    (X4, "out repeat_interleave(x, 2, 3) |> repeat_interleave(3, 1)"),
    ("in x: [N, 3]", "out repeat_interleave(x, 2)"),
    ("in a: [N, T, 4]\n in b: [N, 4, 5]", "out einsum(a, b, \"btk,bkd->btd\") + einsum(a, b, \"...ij,...jk\")"),
    (X4, "out amax(x, 1) - amin(x, (1,)) + amax(x, (1, 2), true) |> squeeze(1)"),
    (X4, "out argmax(x, 1) - argmin(x, 1)"),
    (X4, "out argmin(x, -1, true) + argmax(x, 2, true)"),
    (X4, "out argmax(x) + squeeze(argmin(x, keepdim=true))"),
]
IDS = [f"{i}-" + re.sub(r"\W+", "_", body.replace("out ", "").strip())[:40].strip("_") for i, (_, body) in enumerate(CASES)]


def spec(inputs: str, body: str) -> str:
    """The case's model text."""
    return "model M() {\n " + inputs + "\n " + body + "\n}\n"


@functools.cache
def graph(index: int):
    """The compiled model of case ``index``."""
    return archdsl.compile(spec(*CASES[index]))


def test_every_op_has_an_onnx_lowering():
    assert missing() == [], f"ops without an ONNX lowering: {[op.__name__ for op in missing()]}"


def test_the_cases_cover_every_op():
    covered = {type(node.op) for i in range(len(CASES)) for node in graph(i).nodes}
    untested = [op.__name__ for op in all_ops() if op not in covered and op.family != "linear_attention"]
    # (the linear-attention family has its own cases in test_onnx_linear_attention.py)
    assert untested == [], f"ops with no ONNX parity case: {untested}"


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_onnxruntime_equals_torch(index):
    report = onnx_parity(graph(index))
    assert report.ok, str(report)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("body", ["out gelu(x) + gelu(x, approximate=\"tanh\")",
                                  "c = Conv2d(6, 3, padding=\"same\", padding_mode=\"circular\")\n out x |> c",
                                  "p = Pad((1, 2, 2, 1), mode=\"circular\")\n out x |> p"])
def test_every_opset_gives_the_same_numbers(opset, body):
    g = archdsl.compile(spec(X4, body))
    assert to_onnx(g, opset=opset).opset_import[0].version == opset
    report = onnx_parity(g, opset=opset)
    assert report.ok, str(report)


@given(k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2), p=st.integers(0, 2), g=st.sampled_from([1, 2]),
       h=st.integers(9, 13), w=st.integers(9, 12))
def test_conv_geometry(k, s, d, p, g, h, w):
    g_ = archdsl.compile(spec("in x: [N, 4, H, W]",
                              f"c = Conv2d(4, {k}, stride={s}, dilation={d}, padding={p}, groups={g})\n out x |> c"))
    report = onnx_parity(g_, sizes={"N": 2, "H": h, "W": w})
    assert report.ok, str(report)


@given(k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), ceil=st.booleans(), avg=st.booleans(),
       include=st.booleans(), h=st.integers(5, 11))
def test_pool_windows(k, s, p, ceil, avg, include, h):
    p = min(p, k // 2)
    layer = (f"AvgPool2d({k}, {s}, {p}, ceil_mode={str(ceil).lower()}, count_include_pad={str(include).lower()})"
             if avg else f"MaxPool2d({k}, {s}, {p}, ceil_mode={str(ceil).lower()})")
    report = onnx_parity(archdsl.compile(spec(X4, f"p = {layer}\n out x |> p")), sizes={"N": 1, "H": h, "W": h + 1})
    assert report.ok, str(report)


@given(mode=st.sampled_from(["nearest", "nearest-exact", "bilinear", "bicubic"]),
       scale=st.sampled_from([0.5, 1.5, 2.0, 3.0]), align=st.booleans(), h=st.integers(3, 9))
def test_interpolate_modes(mode, scale, align, h):
    extra = f", align_corners={str(align).lower()}" if mode in ("bilinear", "bicubic") else ""
    g = archdsl.compile(spec(X4, f"u = Upsample(scale_factor={scale}, mode=\"{mode}\"{extra})\n out x |> u"))
    report = onnx_parity(g, sizes={"N": 1, "H": h, "W": h + 2})
    assert report.ok, str(report)


@given(size=st.tuples(st.integers(1, 5), st.integers(1, 5)), h=st.integers(5, 11), w=st.integers(5, 11),
       kind=st.sampled_from(["Avg", "Max"]))
def test_adaptive_bins_on_dynamic_sizes(size, h, w, kind):
    g = archdsl.compile(spec(X4, f"p = Adaptive{kind}Pool2d({size})\n out x |> p"))
    report = onnx_parity(g, sizes={"N": 2, "H": h, "W": w})
    assert report.ok, str(report)


@given(pads=st.lists(st.integers(0, 3), min_size=4, max_size=4),
       mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]), opset=st.sampled_from([18, 21]),
       value=st.sampled_from([0.0, -1.5]))
def test_pad_modes_and_amounts(pads, mode, opset, value):
    fill = f", value={value}" if mode == "constant" else ""
    g = archdsl.compile(spec(X4, f"p = Pad({tuple(pads)}, mode=\"{mode}\"{fill})\n out x |> p"))
    report = onnx_parity(g, opset=opset, sizes={"N": 2, "H": 5, "W": 4})
    assert report.ok, str(report)
