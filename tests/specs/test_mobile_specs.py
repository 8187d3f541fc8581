"""The mobile / efficient CNN specs beyond the zoo's generic checks: their size parameters reproduce the other
members of each family, and the details the state_dict cannot show (stochastic depth, BatchNorm settings, gates,
split attention) follow torchvision and timm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import archdsl
from archdsl import zoo
from archdsl.ir.graph import Graph


def variant(spec: str, body: str) -> Graph:
    """Compile a one-model spec that imports the zoo file ``spec`` and outputs ``image |> body``."""
    path = zoo.spec_dir() / spec
    text = f'import "{path}"\nmodel V() {{\n  "variant"\n  in image: [N, 3, H, W]\n  out image |> {body}\n}}\n'
    return archdsl.compile(text)


# Parameter counts of torchvision 0.29.1 / timm 1.0.31 models that share a spec with a zoo model.
VARIANTS = [
    ("mobilenet_v2 width 0.5", "mobilenet.arch", "mobilenet_v2(width_mult=0.5)", 1_968_680),
    ("mobilenet_v2 width 1.4", "mobilenet.arch", "mobilenet_v2(width_mult=1.4)", 6_108_776),
    ("mobilenet_v3_large width 0.75", "mobilenet.arch", "mobilenet_v3_large(width_mult=0.75)", 3_377_576),
    ("mnasnet0_5", "mnasnet.arch", "mnasnet1_0(alpha=0.5)", 2_218_512),
    ("mnasnet1_3", "mnasnet.arch", "mnasnet1_0(alpha=1.3)", 6_282_256),
    ("efficientnet_b1", "efficientnet.arch", "efficientnet_b0(depth_mult=1.1)", 7_794_184),
    ("efficientnet_b2", "efficientnet.arch", "efficientnet_b0(width_mult=1.1, depth_mult=1.2)", 9_109_994),
    ("shufflenet_v2_x0_5", "shufflenet.arch", "ShuffleNetV2([4, 8, 4], [24, 48, 96, 192, 1024], 1000)", 1_366_792),
    ("shufflenet_v2_x2_0", "shufflenet.arch", "ShuffleNetV2([4, 8, 4], [24, 244, 488, 976, 2048], 1000)",
     7_393_996),
    ("convnext_small", "convnext.arch", "ConvNeXt([3, 3, 27, 3], [96, 192, 384, 768], 0.4, 1000)", 50_223_688),
    ("resnest101e", "resnest.arch", "ResNeSt([3, 4, 23, 3], 64, 2, 1, 64, 1000)", 48_275_016),
    ("resnest50d_4s2x40d", "resnest.arch", "ResNeSt([3, 4, 6, 3], 32, 4, 2, 40, 1000, avd_first=true)", 30_417_592),
    ("regnet_y_800mf", "regnet.arch", "RegNet(14, 56, 38.84, 2.4, 16, se_ratio=0.25)", 6_432_512),
    ("regnet_y_1_6gf", "regnet.arch", "RegNet(27, 48, 20.71, 2.65, 24, se_ratio=0.25)", 11_202_430),
    ("regnet_x_8gf", "regnet.arch", "RegNet(23, 80, 49.56, 2.88, 120)", 39_572_648),
    ("repvgg_a1", "repvgg.arch", "RepVGG([2, 4, 14, 1], [1.0, 1.0, 1.0, 2.5], 64, 1000)", 14_092_264),
    ("repvgg_b0", "repvgg.arch", "RepVGG([4, 6, 16, 1], [1.0, 1.0, 1.0, 2.5], 64, 1000)", 15_817_960),
]


@pytest.mark.parametrize(("spec", "body", "params"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_size_parameters_reproduce_the_family(spec: str, body: str, params: int) -> None:
    assert variant(spec, body).num_params() == params


def stochastic_depth(graph: Graph) -> list[float]:
    """Drop probabilities of the stochastic-depth nodes, in graph order."""
    return [node.op.p for node in graph.nodes if node.op.name == "stochastic_depth"]


def test_efficientnet_b0_drops_residual_blocks_by_their_index() -> None:
    # torchvision: p = 0.2 * block index / 16, applied only where the block has a residual.
    residual_blocks = [2, 4, 6, 7, 9, 10, 12, 13, 14]
    assert stochastic_depth(zoo.compile("efficientnet_b0")) == pytest.approx([0.2 * i / 16 for i in residual_blocks])


def test_convnext_tiny_drops_blocks_linearly_and_starts_layer_scale_at_1e6() -> None:
    graph = zoo.compile("convnext_tiny")
    assert stochastic_depth(graph) == pytest.approx([0.1 * i / 17 for i in range(18)])
    assert graph.params["features.1.0.layer_scale"].init == "constant(value=1e-6)"


def test_mobilenet_v3_uses_hard_gates_and_tensorflow_batchnorm() -> None:
    graph = zoo.compile("mobilenet_v3_small")
    ops = [node.op for node in graph.nodes]
    assert sum(op.name == "hardsigmoid" for op in ops) == 9   # one per squeeze-excite block
    assert not any(op.name == "sigmoid" for op in ops)
    norms = [op for op in ops if op.name == "batch_norm2d"]
    assert {(op.eps, op.momentum) for op in norms} == {(0.001, 0.01)}


def test_mnasnet_batchnorm_momentum_is_tensorflows() -> None:
    norms = [node.op for node in zoo.compile("mnasnet1_0").nodes if node.op.name == "batch_norm2d"]
    assert {round(op.momentum, 10) for op in norms} == {0.0003}


def naive_split_attention(module: torch.nn.Module, x: torch.Tensor, radix: int, groups: int) -> torch.Tensor:
    """timm's SplitAttn.forward (RadixSoftmax included), written out with the module's layers."""
    y = F.relu(module.sa.bn0(module.sa.conv(x)))
    b, rc, h, w = y.shape
    splits = y.reshape(b, radix, rc // radix, h, w)
    gap = splits.sum(dim=1).mean((2, 3), keepdim=True)
    attn = module.sa.fc2(F.relu(module.sa.bn1(module.sa.fc1(gap))))
    attn = F.softmax(attn.view(b, groups, radix, -1).transpose(1, 2), dim=1).reshape(b, -1)
    return (splits * attn.reshape(b, radix, rc // radix, 1, 1)).sum(dim=1)


@pytest.mark.parametrize(("radix", "groups"), [(2, 1), (2, 2), (4, 2)], ids=lambda v: str(v))
def test_split_attention_matches_a_naive_reference(radix: int, groups: int) -> None:
    path = zoo.spec_dir() / "resnest.arch"
    text = (f'import "{path}"\nmodel M() {{\n  "split attention"\n  in x: [N, 16, H, W]\n'
            f'  sa = SplitAttn(16, stride=2, radix={radix}, groups={groups})\n  out x |> sa\n}}\n')
    module = archdsl.build(text, seed=0)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for bn in (module.sa.bn0, module.sa.bn1):
            bn.running_mean.copy_(0.1 * torch.randn(bn.running_mean.shape, generator=gen))
            bn.running_var.copy_(0.5 + torch.rand(bn.running_var.shape, generator=gen))
    module.eval()
    x = torch.randn(2, 16, 9, 9, generator=gen)
    with torch.no_grad():
        want, got = naive_split_attention(module, x, radix, groups), module(x)
    assert got.shape == (2, 16, 5, 5)
    assert float((got - want).norm() / want.norm()) <= 1e-6


def test_repvgg_block_branches_form_one_reparam_sum() -> None:
    graph = zoo.compile("repvgg_a0")
    sums = [node for node in graph.nodes if "reparam" in node.tags]
    assert len(sums) == 22   # the stem and 21 stage blocks
    assert [len(node.inputs) for node in sums[:3]] == [2, 2, 3]   # identity branch once the shape is kept
