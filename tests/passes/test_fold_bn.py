"""fold-bn: eval BatchNorm folded into the neighbouring conv, transposed conv or linear layer, exactly."""

from __future__ import annotations

import torch
from hypothesis import given, settings

import archdsl
from archdsl.ir.weights import Weights
from archdsl.passes import run_pipeline
from archdsl.testing.strategies import SpecCase, bn_folds
from tests.passes.helpers import assert_same_function, built, ops_of


def _folds(case: SpecCase) -> bool:
    """Whether the BN in this case can fold: always, except before a conv that zero-pads (the shift's border)."""
    text = case.text
    return not ("bn |> conv" in text and "padding=1" in text and 'padding_mode="zeros"' in text)


@given(bn_folds())
def test_folded_model_is_the_same_function(case: SpecCase) -> None:
    result = assert_same_function(case, passes="fold-bn")
    norms = [op for op in ops_of(result.graph) if op.startswith("batch_norm")]
    assert (norms == []) == _folds(case), case.text


@settings(max_examples=10)
@given(bn_folds())
def test_folded_model_float32(case: SpecCase) -> None:
    assert_same_function(case, passes="fold-bn", dtype=torch.float32)


GROUPED_TRANSPOSE = """
model Up() {
  in x: [N, 6, H, W]
  up = ConvTranspose2d(4, 3, stride=2, padding=1, output_padding=1, groups=2, bias=false)
  bn = BatchNorm2d()
  out x |> up |> bn
}
"""


def test_transposed_conv_with_groups_scales_its_output_axis() -> None:
    """ConvTranspose weights are [in, out/groups, k, k]: scaling axis 0 (as for a conv) would be wrong."""
    result = assert_same_function(SpecCase(GROUPED_TRANSPOSE))
    assert ops_of(result.graph) == ["conv_transpose2d"]
    assert result.graph.params["up.weight"].layout == ("in", "out", "spatial", "spatial")


def test_a_bn_before_a_zero_padded_conv_stays() -> None:
    text = """
model Pre() {
  in x: [N, 3, H, W]
  bn = BatchNorm2d()
  conv = Conv2d(4, 3, padding=1)
  out x |> bn |> conv
}
"""
    result = assert_same_function(SpecCase(text))
    assert ops_of(result.graph) == ["batch_norm2d", "conv2d"]


def test_a_shared_layer_is_not_folded() -> None:
    """conv applied twice, with a BN after one use only: folding would change the other use."""
    text = """
model Shared() {
  in x: [N, 3, H, W]
  conv = Conv2d(3, 3, padding=1)
  bn = BatchNorm2d()
  out (x |> conv |> bn) + (x |> conv |> conv)
}
"""
    result = assert_same_function(SpecCase(text), passes="fold-bn,dce")
    assert "batch_norm2d" in ops_of(result.graph)


def test_a_container_of_conv_and_bn_takes_the_container_name() -> None:
    """timm's ConvNorm: seq[conv, bn] at `proj` folds into one conv named `proj` (ResNet's conv1/bn1 keep conv1)."""
    text = """
model Named() {
  in x: [N, 3, H, W]
  conv1 = Conv2d(4, 3, padding=1, bias=false)
  bn1 = BatchNorm2d()
  proj = seq[Conv2d(4, 1, bias=false), BatchNorm2d()]
  out x |> conv1 |> bn1 |> relu |> proj
}
"""
    result = assert_same_function(SpecCase(text))
    assert sorted(result.graph.params) == ["conv1.bias", "conv1.weight", "proj.bias", "proj.weight"]


def test_fold_is_idempotent_and_weights_fit() -> None:
    graph = archdsl.compile("resnet18")
    once = run_pipeline(graph, Weights.of(built(graph, torch.float32), graph), "fold-bn")
    again = run_pipeline(once.graph, once.weights, "fold-bn")
    assert again.steps == () and again.graph == once.graph
    once.weights.check(once.graph)
    assert not [n for n in once.graph.nodes if n.op.name.startswith("batch_norm")]
