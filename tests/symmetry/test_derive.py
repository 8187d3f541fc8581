"""Derived classes against known answers (Git Re-Basin's ResNet spec, MLPs, ViT), coverage and reasons."""

from __future__ import annotations

from collections import Counter

import pytest

import archdsl
from archdsl.symmetry import derive
from tests.symmetry.helpers import SMALL, SMALL_MODELS, graph, spec


def sizes(name: str) -> Counter:
    return Counter(c.size for c in spec(name).classes)


def test_resnet18_has_one_class_per_stage_and_one_per_inner_conv() -> None:
    # Git Re-Basin's hand spec: the stem shares stage 1's class (no projection in layer1); 8 inner convs.
    assert sizes("resnet18") == Counter({64: 3, 128: 3, 256: 3, 512: 3})
    assert not spec("resnet18").block_classes


def test_resnet50_stem_stages_and_two_inner_classes_per_bottleneck() -> None:
    s = spec("resnet50")
    assert len(s.classes) == 1 + 4 + 2 * 16
    stream = {c.size for c in s.classes if any(m.param.endswith("downsample.1.weight") for m in c.members)}
    assert stream == {256, 512, 1024, 2048}
    inner = {c.id for c in s.classes for m in c.members
             if m.param.startswith("layer") and m.param.endswith(("conv1.weight", "conv2.weight")) and m.axis == 0}
    assert len(inner) == 32
    assert [c.size for c in s.classes if any(m.param == "conv1.weight" and m.axis == 0 for m in c.members)] == [64]


def test_mlp_has_one_class_per_hidden_layer_with_the_activation_scaling() -> None:
    s = spec("mlp")
    assert [c.size for c in s.classes] == [16, 12, 9]
    assert [c.scalings for c in s.classes] == [["positive"], ["sign"], []]      # relu, tanh, gelu
    assert s.pinned[0].reason == "graph output 'out'"


def test_vit_residual_stream_is_one_class_and_heads_are_blocks() -> None:
    s = spec("tiny_vit")
    stream = [c for c in s.classes if any(m.param == "pos" for m in c.members)]
    assert len(stream) == 1 and stream[0].size == 8
    params = {m.param for m in stream[0].members}
    assert {"proj.weight", "cls", "blocks.b0.attn.out_proj.weight", "blocks.b1.mlp.2.weight", "ln.weight", "head.weight"} <= params
    assert [b.size for b in s.block_classes] == [4, 4]                         # two layers of 4 heads
    assert all(len(blk) == 2 for b in s.block_classes for blk in b.blocks)     # (q = k units, v units)


def test_grouped_convolution_blocks_merge_with_group_norm_groups() -> None:
    s = spec("grouped")
    assert [b.size for b in s.block_classes] == [4]
    assert not s.notes


def test_misaligned_groups_drop_block_permutations_with_a_reason() -> None:
    text = SMALL_TEXT.replace("GroupNorm(4)", "GroupNorm(3)")
    s = derive(archdsl.compile(text, "grouped"))
    assert not s.block_classes
    assert any("blocks differ in their class sizes" in n for n in s.notes)


SMALL_TEXT = SMALL.read_text()


def test_depthwise_convolution_passes_the_class_through() -> None:
    s = spec("mobilenet_v2")
    dw = [c for c in s.classes if any(m.param == "features.1.conv.0.0.weight" and m.axis == 0 for m in c.members)]
    assert len(dw) == 1 and dw[0].size == 32                                   # the stem's class, through dw


def test_straddling_slice_and_split_then_add_refine_classes() -> None:
    s = spec("segments")
    assert sorted(c.size for c in s.classes) == [1, 2, 3, 6]
    twice = [c for c in s.classes if c.size == 2][0]
    assert {(m.param, m.start) for m in twice.members if m.param == "a.weight"} == {("a.weight", 0), ("a.weight", 6)}


@pytest.mark.parametrize("name", [*SMALL_MODELS, "resnet18", "mobilenet_v2", "vit_b_16", "densenet121",
                                  "shufflenet_v2_x1_0", "levit_128"])
def test_every_parameter_axis_is_in_a_class_or_pinned_with_a_reason(name: str) -> None:
    s = spec(name)
    moved = {(m.param, m.axis) for c in s.classes for m in c.members}
    pinned = {(p, a) for p, a, reason in s.uncovered if reason}
    pinned |= {(m.param, m.axis) for c in s.pinned for m in c.members if c.reason}
    for key, p in graph(name).params.items():
        for axis, size in enumerate(p.shape):
            if int(size) > 1:
                assert (key, axis) in moved | pinned, f"{key} axis {axis} is neither moved nor pinned"


def test_ops_without_a_contract_pin_what_they_touch() -> None:
    text = """
model shuffled() {
  "A channel shuffle between two convolutions."
  in image: [N, 4, 5, 5]
  a = Conv2d(6, 1)
  b = Conv2d(2, 1)
  out image |> a |> relu |> channel_shuffle(2) |> b
}
"""
    s = derive(archdsl.compile(text))
    assert not s.classes
    assert "channel shuffle" in s.pinned[0].reason
    assert any(w.verb == "pinned" and w.op == "channel_shuffle" for w in s.pinned[0].provenance)


def test_provenance_names_the_ops_and_their_source_lines() -> None:
    c = spec("mlp").classes[0]
    assert str(c.provenance[0]).startswith("created by linear 'fc1' at ")
    assert c.provenance[0].span.line > 0


def test_derivation_is_deterministic() -> None:
    a, b = derive(graph("tiny_resnet")), derive(graph("tiny_resnet"))
    assert [(c.id, c.size, c.members) for c in a.classes] == [(c.id, c.size, c.members) for c in b.classes]


def test_vit_b_16_stream_is_one_class_and_each_layer_has_twelve_head_blocks() -> None:
    s = spec("vit_b_16")
    stream = [c for c in s.classes if any(m.param == "encoder.pos_embedding" for m in c.members)]
    assert len(stream) == 1 and stream[0].size == 768
    assert [b.size for b in s.block_classes] == [12] * 12
    hidden = [c for c in s.classes if any(m.param.endswith("mlp.0.weight") and m.axis == 0 for m in c.members)]
    assert [c.size for c in hidden] == [3072] * 12


def test_an_op_without_a_contract_is_pinned_by_default(monkeypatch) -> None:
    from archdsl.ops.activation import Tanh

    monkeypatch.setattr(Tanh, "symmetry", None)          # as a newly added op would be
    s = derive(graph("mlp"))
    assert [c.size for c in s.classes] == [16, 9]       # fc2's class (into tanh) is pinned, the others stay
    assert any("op 'tanh' declares no symmetry contract" in c.reason for c in s.pinned)
