"""merge-branches: every reparam block becomes one convolution that computes exactly what its branches did."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.passes import PassError
from archdsl.testing.strategies import SpecCase, reparam_blocks
from tests.passes.helpers import assert_same_function, built, ops_of


@given(reparam_blocks())
def test_merged_block_is_the_same_function_float64(case: SpecCase) -> None:
    result = assert_same_function(case)
    assert "add_n" not in ops_of(result.graph)                     # the claim was honoured: one conv left
    assert sum(op.startswith("conv") for op in ops_of(result.graph)) == 1


@settings(max_examples=10)
@given(reparam_blocks())
def test_merged_block_is_the_same_function_float32(case: SpecCase) -> None:
    assert_same_function(case, dtype=torch.float32)                # relative error <= 1e-5


@settings(max_examples=15)
@given(reparam_blocks(relu=False), st.integers(0, 3))
def test_delta_probes_reveal_the_merged_kernel(case: SpecCase, seed: int) -> None:
    """A second oracle: y(delta) - y(0) of the training form is the merged kernel (SESR's probe, biases on)."""
    graph = archdsl.compile(case.text)
    if any(isinstance(d, int) for d in graph.inputs["x"].shape[2:]):
        return                                                     # 'same'-padded cases have fixed sizes
    model = built(graph, torch.float64, seed)
    deploy = archdsl.simplify(graph, weights=model).module()
    conv = next(m for m in deploy.modules() if isinstance(m, torch.nn.Conv2d))
    if conv.stride != (1, 1):
        return                                                     # the probe reads the kernel at stride 1
    kernel = conv.weight.detach()
    c, (kh, kw) = graph.inputs["x"].shape[1], kernel.shape[2:]
    size = 2 * max(kh, kw) + 3
    zero = model(torch.zeros(1, c, size, size, dtype=torch.float64))
    groups, per = conv.groups, c // conv.groups
    for ch in range(c):
        delta = torch.zeros(1, c, size, size, dtype=torch.float64)
        delta[0, ch, size // 2, size // 2] = 1.0
        response = (model(delta) - zero)[0]                        # [O, size, size]
        pb, pw = conv.padding if isinstance(conv.padding, tuple) else (0, 0)
        rows = [size // 2 + pb - i for i in range(kh)]
        cols = [size // 2 + pw - j for j in range(kw)]
        revealed = response[:, rows][:, :, cols]                   # [O, kh, kw]
        group = ch // per
        out_per = kernel.shape[0] // groups
        expect = torch.zeros_like(revealed)
        expect[group * out_per:(group + 1) * out_per] = kernel[group * out_per:(group + 1) * out_per, ch % per]
        assert torch.allclose(revealed, expect, rtol=1e-9, atol=1e-9), case.text


def test_structural_mode_gives_the_weight_mode_graph() -> None:
    graph = archdsl.compile("repvgg_a0")
    structural = archdsl.simplify(graph).graph
    weighted = archdsl.simplify(graph, weights=archdsl.build(graph)).graph
    assert structural == weighted
    assert archdsl.simplify(structural).result.steps == ()        # deploy twice: nothing left to do


SAME_STRIDE_2 = """
model Same() {{
  in x: [N, 3, {h}, {w}]
  out x |> reparam {{
    dense = Conv2d(4, 3, stride=2, padding="same")
    point = Conv2d(4, 1, stride=2, padding="same")
  }}
}}
"""


@pytest.mark.parametrize("h,w", [(8, 8), (9, 9), (8, 9)])
def test_same_padding_with_stride_2_anchors_by_parity(h: int, w: int) -> None:
    """'same' pads by the input's parity, so the 1x1's place in the 3x3 kernel depends on it (a known trap)."""
    case = SpecCase(SAME_STRIDE_2.format(h=h, w=w), ({"N": 2},))
    result = assert_same_function(case)
    assert ops_of(result.graph) == ["conv2d"]


def test_a_nonlinear_branch_is_a_located_error() -> None:
    text = """
model Bad() {
  in x: [N, 4, H, W]
  out x |> reparam {
    a = seq[Conv2d(4, 3, padding=1), BatchNorm2d()]
    b = seq[Conv2d(4, 1), relu]
  }
}
"""
    with pytest.raises(PassError) as err:
        archdsl.simplify(text)
    message = err.value.render()
    assert "reaches relu" in message and "not affine in eval mode" in message
    assert ":4:12" in message and ":6:27" in message                # the block and the offending op


def test_two_padded_convolutions_in_a_branch_do_not_compose() -> None:
    """conv3x3(pad 1) after conv3x3(pad 1): moving the inner padding to the input changes the borders."""
    text = """
model Chain() {
  in x: [N, 4, H, W]
  out x |> reparam {
    a = seq[Conv2d(4, 3, padding=1), Conv2d(4, 3, padding=1)]
    b = Conv2d(4, 1)
  }
}
"""
    with pytest.raises(PassError, match="changes the border pixels"):
        archdsl.simplify(text)


def test_dbb_padding_after_a_bias_is_refused() -> None:
    """1x1 conv + BN, then a padded kxk: the BN shift would reach the border (DBB pads with it instead)."""
    text = """
model Dbb() {
  in x: [N, 4, H, W]
  out x |> reparam {
    a = seq[Conv2d(4, 1, bias=false), BatchNorm2d(), Conv2d(4, 3, padding=1)]
    b = Conv2d(4, 3, padding=1)
  }
}
"""
    with pytest.raises(PassError, match="border pixels would differ"):
        archdsl.simplify(text)


def test_grids_that_agree_at_one_fixed_size_merge_at_that_size() -> None:
    """A 2x2/2 and a 1x1/2 window tile an 8-pixel input alike (not a 9-pixel one): exact for the fixed size."""
    text = """
model Grid() {
  in x: [N, 4, 8, 8]
  out x |> reparam {
    a = Conv2d(4, 2, stride=2)
    b = Conv2d(4, 1, stride=2)
  }
}
"""
    result = assert_same_function(SpecCase(text, ({"N": 2},)))
    assert ops_of(result.graph) == ["conv2d"]


def test_shifted_anchors_merge_into_a_wider_kernel() -> None:
    text = """
model Shift() {
  in x: [N, 3, H, W]
  out x |> reparam {
    centred = Conv2d(5, 3, padding=1)
    shifted = Conv2d(5, 3, padding=((1, 1), (0, 2)))
  }
}
"""
    result = assert_same_function(SpecCase(text))
    (conv,) = result.graph.nodes
    assert conv.op.kernel_size == (3, 4)


def test_an_untagged_sum_merges_only_when_cheaper() -> None:
    cheaper = """
model Residual() {
  conv = Conv2d(4, 3, padding=1)
  in x: [N, 4, H, W]
  out x + x |> conv
}
"""
    dearer = """
model Bottleneck() {
  a = Conv2d(64, 1)
  b = Conv2d(8, 3, padding=1)
  in x: [N, 8, H, W]
  out x + x |> a |> b
}
"""
    assert ops_of(assert_same_function(SpecCase(cheaper)).graph) == ["conv2d"]
    assert ops_of(assert_same_function(SpecCase(dearer)).graph) == ["conv2d", "conv2d", "add"]


def test_a_sum_of_linear_heads_becomes_one_linear() -> None:
    """RepViT's classifier: (bn+linear)(x) + (bn+linear)(x), halved, is one Linear named after its block."""
    text = """
block Head() {
  in x: [N, C]
  head = seq{bn: BatchNorm1d(), l: Linear(6)}
  head_dist = seq{bn: BatchNorm1d(), l: Linear(6)}
  out (x |> head + x |> head_dist) / 2
}
model Heads() {
  in x: [N, 5, H, W]
  head = Head()
  out x |> mean((2, 3)) |> head
}
"""
    result = assert_same_function(SpecCase(text))
    assert ops_of(result.graph) == ["mean", "linear"]
    assert sorted(result.graph.params) == ["head.bias", "head.weight"]


def test_slab_repbn_merges_into_one_per_channel_map() -> None:
    """SLAB's RepBN, BN(x) + alpha * x over [N, C, L] tokens, is one per-channel affine map in eval mode."""
    text = """
model RepBN() {
  in x: [N, 6, L]
  out x |> reparam { bn = BatchNorm1d(); alpha = LayerScale(0.5, dim=1) } |> gelu
}
"""
    result = assert_same_function(SpecCase(text, ({"N": 2, "L": 7}, {"N": 1, "L": 4})))
    (conv, _) = result.graph.nodes
    assert conv.op.name == "conv1d" and conv.op.groups == 6 and conv.op.kernel_size == (1,)


NAMED = """
block Rep(c: int) {
  in x: [N, C, H, W]
  out relu(x |> reparam "rbr_reparam" {
    rbr_dense = seq[Conv2d(c, 3, padding=1, bias=false), BatchNorm2d()]
    rbr_1x1 = seq[Conv2d(c, 1, bias=false), BatchNorm2d()]
  })
}
model Named() {
  in x: [N, 3, H, W]
  body = seq[Rep(4), Rep(4)]
  out x |> body
}
"""


def test_a_spec_names_the_merged_layer() -> None:
    """`reparam "rbr_reparam" { }`: the original RepVGG code's name instead of timm's reparam_conv."""
    result = assert_same_function(SpecCase(NAMED))
    assert sorted(result.graph.params) == ["body.0.rbr_reparam.bias", "body.0.rbr_reparam.weight",
                                           "body.1.rbr_reparam.bias", "body.1.rbr_reparam.weight"]
    from archdsl.syntax.parser import parse
    from archdsl.syntax.printer import format_module

    assert 'reparam "rbr_reparam" {' in format_module(parse(NAMED, "named.arch"))
    with pytest.raises(archdsl.ElaborationError, match="must be a plain name"):
        archdsl.compile(NAMED.replace('"rbr_reparam"', '"a.b"'))
