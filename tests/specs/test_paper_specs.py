"""Zoo models written from their papers (no library reference): NIN, All-CNN-C, ESPCN, SESR, DCGAN, FCN-32s.

Expected parameter counts are computed here from each paper's layer description, independently of the specs.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F

import archdsl
from archdsl.analysis import bind, stats
from archdsl.verify import verify
from tests.specs.reference_models import compiled, meta_module

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
SESR = {"m5": (5, 16), "m11": (11, 16), "xl": (11, 32)}     # (m, f): number of 3x3 blocks and feature width
EXPANSION = 256                                              # p, the width inside a collapsible linear block


def conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    """Parameters of a kxk convolution."""
    return cin * cout * k * k + (cout if bias else 0)


def chain(widths: list[int], k: int, bias: bool = True) -> int:
    """Parameters of kxk convolutions between consecutive widths."""
    return sum(conv(a, b, k, bias) for a, b in pairwise(widths))


def vgg16_features() -> int:
    """The 13 3x3 convolutions of VGG16 (configuration D)."""
    widths = [3] + [v for v in VGG16 if v != "M"]
    return chain(widths, 3)


def sesr_training(m: int, f: int, scale: int, p: int = EXPANSION) -> int:
    """SESR's expanded form: kxk conv to p, 1x1 conv back (no biases) per block, and per-channel PReLUs."""
    blocks = [(1, f, 5)] + [(f, f, 3)] * m + [(f, scale * scale, 5)]
    return sum(conv(a, p, k, False) + conv(p, b, 1, False) for a, b, k in blocks) + (m + 1) * f


def sesr_collapsed(m: int, f: int, scale: int) -> int:
    """SESR's inference form: one kxk conv per collapsible block, no biases (the count the paper reports)."""
    return conv(1, f, 5, False) + m * conv(f, f, 3, False) + conv(f, scale * scale, 5, False)


EXPECTED_PARAMS = {
    # NIN, Caffe CIFAR-10 model: 192-160-96 (5x5), 192-192-192 (5x5), 192-192-10 (3x3) mlpconv layers.
    "nin_cifar10": chain([3, 192], 5) + chain([192, 160, 96], 1) + chain([96, 192], 5) + chain([192, 192, 192], 1)
    + chain([192, 192], 3) + chain([192, 192, 10], 1),
    # All-CNN-C, Table 2: 3x3 96 x3 (last strided), 3x3 192 x3 (last strided), 3x3 192 valid, 1x1 192, 1x1 10.
    "allcnn_c": chain([3, 96, 96, 96, 192, 192, 192, 192], 3) + chain([192, 192, 10], 1),
    # ESPCN, Section 3.2: (f1, n1) = (5, 64), (f2, n2) = (3, 32), f3 = 3 to r^2 = 9 channels, on Y only.
    "espcn_x3": conv(1, 64, 5) + conv(64, 32, 3) + conv(32, 9, 3),
    # DCGAN tutorial: 4x4 (transposed) convs without bias; BatchNorm weight + bias on all but the end layers.
    "dcgan_generator": chain([100, 512, 256, 128, 64, 3], 4, bias=False) + 2 * (512 + 256 + 128 + 64),
    "dcgan_discriminator": chain([3, 64, 128, 256, 512, 1], 4, bias=False) + 2 * (128 + 256 + 512),
    # FCN-32s: VGG16 convs, fc6 7x7 4096, fc7 1x1 4096, score 1x1 21, upscore 64x64 transposed, no bias.
    "fcn32s_vgg16": vgg16_features() + conv(512, 4096, 7) + conv(4096, 4096, 1) + conv(4096, 21, 1)
    + conv(21, 21, 64, bias=False),
    **{f"sesr_{key}_x{s}": sesr_training(m, f, s) for key, (m, f) in SESR.items() for s in (2, 4)},
}

TITLES = {
    "nin": "'Network In Network', ICLR 2014",
    "allcnn": "'Striving for Simplicity: The All Convolutional Net', ICLR 2015",
    "espcn": "'Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural "
             "Network', CVPR 2016",
    "dcgan": "'Unsupervised Representation Learning with Deep Convolutional Generative Adversarial Networks', ICLR 2016",
    "fcn32s": "'Fully Convolutional Networks for Semantic Segmentation', CVPR 2015",
    "sesr": "'Collapsible Linear Blocks for Super-Efficient Super Resolution', MLSys 2022",
}

SHAPES = [   # model, input, output
    ("nin_cifar10", (2, 3, 32, 32), (2, 10)),
    ("allcnn_c", (2, 3, 32, 32), (2, 10)),
    ("espcn_x3", (1, 1, 16, 16), (1, 1, 48, 48)),
    ("dcgan_generator", (2, 100, 1, 1), (2, 3, 64, 64)),
    ("dcgan_discriminator", (2, 3, 64, 64), (2, 1, 1, 1)),
    *[(f"sesr_{key}_x{s}", (1, 1, 12, 12), (1, 1, 12 * s, 12 * s)) for key in SESR for s in (2, 4)],
]


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_count_equals_the_papers_layer_table(name: str) -> None:
    graph = compiled(name)
    verify(graph)
    assert graph.num_params() == EXPECTED_PARAMS[name]
    assert TITLES[name.split("_")[0]] in graph.doc, "the doc string names the paper"


def test_counts_the_papers_print() -> None:
    # NIN: 966,986 (not printed in the paper; computed above); All-CNN-C: "1.4M" (Springenberg et al., Table 3).
    assert EXPECTED_PARAMS["nin_cifar10"] == 966_986
    assert EXPECTED_PARAMS["allcnn_c"] == 1_369_738 and round(EXPECTED_PARAMS["allcnn_c"] / 1e6, 1) == 1.4
    # FCN-VGG16: "134M" parameters (Long et al., Table 1), the fixed bilinear upsampling not counted.
    assert round((EXPECTED_PARAMS["fcn32s_vgg16"] - conv(21, 21, 64, bias=False)) / 1e6) == 134
    # DCGAN tutorial sizes (nz=100, ngf=ndf=64, nc=3).
    assert (EXPECTED_PARAMS["dcgan_generator"], EXPECTED_PARAMS["dcgan_discriminator"]) == (3_576_704, 2_765_568)
    # SESR-M5 x2: 13.52K parameters, 3.11G MACs for a 1280x720 output (Bhardwaj et al., results table).
    assert sesr_collapsed(5, 16, 2) == 13_520
    assert abs(sesr_collapsed(5, 16, 2) * 640 * 360 / 1e9 - 3.11) < 0.01


@pytest.mark.parametrize(("name", "shape", "want"), SHAPES, ids=[s[0] for s in SHAPES])
def test_forward_pass_has_the_papers_output_shape(name: str, shape: tuple[int, ...], want: tuple[int, ...]) -> None:
    module = archdsl.build(compiled(name), seed=0).eval()
    with torch.no_grad():
        out = module(torch.randn(shape, generator=torch.Generator().manual_seed(0)))
    assert tuple(out.shape) == want
    assert torch.isfinite(out).all()


def test_fcn32s_upsamples_scores_back_to_the_input_size() -> None:
    module = meta_module("fcn32s_vgg16").eval()
    out = module(torch.empty(1, 3, 96, 64, device="meta"))
    assert tuple(out.shape) == (1, 21, 96, 64)
    graph = compiled("fcn32s_vgg16")
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]   # torchvision vgg16 `features` indices
    assert {k for k in graph.params if k.startswith("features.")} == \
        {f"features.{i}.{p}" for i in convs for p in ("weight", "bias")}
    assert graph.params["upscore.weight"].shape == (21, 21, 64, 64)


def pooled_input_shape(name: str, side: int) -> tuple[int, ...]:
    """Shape of the global average pooling's input for a square input of ``side`` pixels."""
    graph = bind(compiled(name), {"N": 1, "H": side, "W": side})
    node = next(n for n in graph.nodes if n.op.name == "global_avg_pool")
    return tuple(int(d) for d in graph.value_types()[node.inputs[0]].shape)


def test_classifiers_average_the_papers_final_maps() -> None:
    assert pooled_input_shape("nin_cifar10", 32) == (1, 10, 8, 8)     # Caffe NIN pool3: 8x8 average
    assert pooled_input_shape("allcnn_c", 32) == (1, 10, 6, 6)        # "global averaging over 6x6"


def test_espcn_takes_scale_and_channels() -> None:
    graph = compiled("espcn_x3")
    assert [n.op.name for n in graph.nodes].count("tanh") == 2
    module = archdsl.build(archdsl.zoo.compile("espcn_x3", scale=2, channels=3), seed=0).eval()
    assert module.conv3.weight.shape == (12, 32, 3, 3)
    assert module(torch.randn(1, 3, 8, 8)).shape == (1, 3, 16, 16)


def test_dcgan_state_dicts_follow_the_pytorch_tutorial() -> None:
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    g, d = compiled("dcgan_generator"), compiled("dcgan_discriminator")
    assert set(g.params) == {f"main.{i}.weight" for i in (0, 3, 6, 9, 12)} | {f"main.{i}.{p}" for i in (1, 4, 7, 10)
                                                                               for p in bn}
    assert set(d.params) == {f"main.{i}.weight" for i in (0, 2, 5, 8, 11)} | {f"main.{i}.{p}" for i in (3, 6, 9)
                                                                               for p in bn}
    assert [n.op.name for n in g.nodes][-1] == "tanh" and [n.op.name for n in d.nodes][-1] == "sigmoid"
    assert {n.op.negative_slope for n in d.nodes if n.op.name == "leaky_relu"} == {0.2}


def collapse(weights: dict[str, torch.Tensor], block: str) -> torch.Tensor:
    """One kxk kernel equal to a collapsible linear block: squeeze @ expand, plus a centred delta if residual."""
    expand, squeeze = weights[f"{block}.conv.expand.weight"], weights[f"{block}.conv.squeeze.weight"]
    kernel = torch.einsum("op,pikl->oikl", squeeze[:, :, 0, 0], expand)
    if kernel.shape[0] == kernel.shape[1]:
        k = kernel.shape[-1] // 2
        kernel[:, :, k, k] += torch.eye(kernel.shape[0], dtype=kernel.dtype)
    return kernel


def collapsed_sesr(weights: dict[str, torch.Tensor], m: int, scale: int, x: torch.Tensor) -> torch.Tensor:
    """SESR's inference network (the paper's collapsed form), written directly with torch functions."""
    features = F.prelu(F.conv2d(x, collapse(weights, "input_block"), padding=2), weights["input_act.weight"])
    y = features
    for i in range(m):
        y = F.prelu(F.conv2d(y, collapse(weights, f"linear_blocks.{i}.block"), padding=1),
                    weights[f"linear_blocks.{i}.act.weight"])
    y = F.conv2d(features + y, collapse(weights, "output_block"), padding=2) + x
    return F.pixel_shuffle(y, scale)


@pytest.mark.parametrize("name", ["sesr_m5_x2", "sesr_m5_x4"])
def test_sesr_training_form_equals_its_collapsed_form(name: str) -> None:
    m, f = SESR["m5"]
    scale = int(name[-1])
    module = archdsl.build(compiled(name), seed=0).double().eval()
    weights = {k: v.detach() for k, v in module.state_dict().items()}
    x = torch.randn(1, 1, 10, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = collapsed_sesr(weights, m, scale, x)
        out = module(x)
    assert ((out - ref).norm() / ref.norm()).item() < 1e-10
    blocks = ["input_block", *(f"linear_blocks.{i}.block" for i in range(m)), "output_block"]
    assert sum(collapse(weights, b).numel() for b in blocks) == sesr_collapsed(m, f, scale)


@pytest.mark.parametrize("key", sorted(SESR))
def test_sesr_blocks_are_reparam_sums_and_linear_chains(key: str) -> None:
    m, f = SESR[key]
    graph = compiled(f"sesr_{key}_x2")
    assert sum("reparam" in n.tags for n in graph.nodes) == m     # the 3x3 blocks carry the short residual
    assert [n.op.name for n in graph.nodes].count("prelu") == m + 1
    assert all(n.op.bias is False for n in graph.nodes if n.op.name == "conv2d")
    conv_weights = sum(p.numel() for k, p in graph.params.items() if k.endswith("conv.expand.weight")
                       or k.endswith("conv.squeeze.weight"))
    macs = stats(bind(graph, {"N": 1, "H": 36, "W": 64})).macs
    assert macs == conv_weights * 36 * 64    # stride 1, 'same' padding: every weight is used once per pixel
