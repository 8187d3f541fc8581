"""DOT drawing: labels, shape-labelled edges, clusters, ×n folding, rendering and its errors."""

from __future__ import annotations

import re

import pytest

import archdsl
from archdsl import viz
from archdsl.analysis import bind, stats
from archdsl.errors import UsageError
from tests.tiny_resnet import with_block

RESNET = with_block("""\
model TinyResNet(num_classes: int = 10) {
  "A small ResNet."
  in image: [N, 3, H, W]
  conv1 = Conv2d(8, 3, stride=2, padding=1, bias=false)
  bn1 = BatchNorm2d()
  layer1 = [BasicBlock(8) for i in range(3)]
  layer2 = [BasicBlock(16, stride=2 if i == 0 else 1) for i in range(2)]
  fc = Linear(num_classes)
  out image |> conv1 |> bn1 |> relu |> layer1 |> layer2 |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
""")

PARALLEL = """
block Unit() {
  in x: [N, C]
  fc = Linear(4)
  out x |> fc |> relu
}
model Parallel() {
  in x: [N, 4]
  a = Unit()
  b = Unit()
  out x |> a + x |> b
}
"""


@pytest.fixture(scope="module")
def resnet() -> archdsl.Graph:
    return archdsl.compile(RESNET)


def test_nodes_show_op_attributes(resnet: archdsl.Graph) -> None:
    text = viz.to_dot(resnet)
    assert "conv1\\nconv2d 3x3/2, 8" in text
    assert '"n:layer2_0_downsample_0" [label="downsample.0\\nconv2d 1x1/2, 16"' in text   # named inside its frame
    assert "fc\\nlinear, 10" in text


def test_op_label_groups_and_dilation() -> None:
    graph = archdsl.compile("model M() { in x: [N, 8, H, W]\n dw = Conv2d(8, 3, dilation=2, groups=8)\n out x |> dw }")
    assert viz.op_label(graph.nodes[0].op) == "conv2d 3x3, 8, g=8, d=2"


def test_full_graph_has_nested_clusters_and_shape_edges(resnet: archdsl.Graph) -> None:
    text = viz.to_dot(resnet)
    for name in ("cluster_layer1.0", "cluster_layer2.0"):          # a list entry is framed, not the list
        assert f'subgraph "{name}"' in text
    assert 'subgraph "cluster_layer1"' not in text and "cluster_layer2.0.downsample" not in text
    assert 'label="layer1.0\\nTwo 3x3 convs with a residual."' in text     # a doc shows once, wrapped
    assert text.count("Two 3x3 convs with a residual.") == 1
    assert '"in:image" -> "n:conv1" [label=" [N, 3, H, W]"]' in text
    assert "×" not in text


def test_concrete_shapes_after_bind(resnet: archdsl.Graph) -> None:
    text = viz.to_dot(bind(resnet, {"N": 1, "H": 32, "W": 32}))
    assert '"n:conv1" -> "n:bn1" [label=" [1, 8, 16, 16]"]' in text
    assert '"n:fc" -> "out:out" [label=" [1, 10]"]' in text


def test_depth_one_folds_repeated_list_entries(resnet: archdsl.Graph) -> None:
    text = viz.to_dot(resnet, depth=1)                 # layer1.0 is one level: the entry with its list
    assert '"b:layer1.0" [label="layer1.0 .. 2  ×3' in text
    assert '"b:layer2.0" [label="layer2.0\\n' in text and '"b:layer2.1" [label="layer2.1\\n' in text  # downsample
    assert "cluster_" not in text
    assert re.search(r'"b:layer1\.0" -> "b:layer2\.0"', text)
    assert "layer1.1" not in text and "7 ops, 1.18K params each" in text


STAGES = """
block Unit(width: int) {
  in x: [N, C]
  fc = Linear(width)
  out x |> fc |> relu
}
block Down(width: int) {
  in x: [N, C]
  fc = Linear(width)
  out x |> fc |> tanh
}
block Stage(width: int) {
  "A downsampling unit, then two units."
  in x: [N, C]
  down = Down(width)
  blocks = [Unit(width) for i in range(2)]
  out x |> down |> blocks
}
model Staged() {
  in x: [N, 4]
  stages = [Stage(w) for w in [8, 16]]
  out x |> stages
}
"""


def test_named_sub_block_and_list_entries_open_together() -> None:
    """``stages.1.down`` and ``stages.1.blocks.0`` are both two levels deep: one depth shows both as boxes."""
    graph = archdsl.compile(STAGES)
    two = viz.to_dot(graph, depth=2)
    assert '"b:stages.1.down" [label="down\\n' in two
    assert '"b:stages.1.blocks.0" [label="blocks.0 .. 1  ×2' in two
    assert "n:stages_1_down_fc" not in two
    three = viz.to_dot(graph, depth=3)
    assert '"b:' not in three and "n:stages_1_down_fc" in three and "n:stages_1_blocks_0_fc" in three
    assert [r.name for r in stats(graph, depth=2).rows] == [
        "stages.0.down", "stages.0.blocks.0", "stages.0.blocks.1",
        "stages.1.down", "stages.1.blocks.0", "stages.1.blocks.1"]


def test_parallel_identical_siblings_do_not_fold() -> None:
    text = viz.to_dot(archdsl.compile(PARALLEL), depth=1)
    assert "×" not in text
    assert '"b:a"' in text and '"b:b"' in text


def test_depth_must_be_positive(resnet: archdsl.Graph) -> None:
    with pytest.raises(UsageError, match="depth"):
        viz.to_dot(resnet, depth=0)


def test_render_dot_is_atomic_text(resnet: archdsl.Graph, tmp_path) -> None:
    out = tmp_path / "g.dot"
    viz.render(resnet, out, depth=2)
    assert out.read_text() == viz.to_dot(resnet, depth=2)
    assert [p.name for p in tmp_path.iterdir()] == ["g.dot"]


def test_render_svg_and_png(resnet: archdsl.Graph, tmp_path) -> None:
    viz.render(resnet, tmp_path / "g.svg", depth=2)
    svg = (tmp_path / "g.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and "×3" in svg
    viz.render(resnet, tmp_path / "g.png", depth=1)
    assert (tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")


def test_repr_svg(resnet: archdsl.Graph) -> None:
    assert "<svg" in viz.show(resnet)._repr_svg_()


def test_missing_dot_explains_install(resnet: archdsl.Graph, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    with pytest.raises(UsageError, match="dot") as info:
        viz.render(resnet, tmp_path / "g.svg")
    assert "apt-get install graphviz" in info.value.render()
    assert list(tmp_path.iterdir()) == []
    assert viz.show(resnet)._repr_svg_() is None


@pytest.mark.parametrize("name", ["g.txt", "missing/g.svg"])
def test_render_bad_path(resnet: archdsl.Graph, tmp_path, name: str) -> None:
    with pytest.raises(UsageError, match="cannot"):
        viz.render(resnet, tmp_path / name)


def test_open_run_of_identical_blocks_shows_one_representative(resnet: archdsl.Graph) -> None:
    """At a depth where layer1.0 .. layer1.2 are drawn open, one is drawn, badged ×3, wired like the run."""
    text = viz.to_dot(resnet, depth=2)
    assert 'label="layer1.0 .. 2  ×3' in text and "cluster_layer1.0" in text
    assert "cluster_layer1.1" not in text and "layer1_1_conv1" not in text
    assert re.search(r'"n:layer1_0_conv1" \[label="conv1\\nconv2d 3x3, 8"', text)
    assert '"n:relu_3" -> "n:layer2_0_conv1"' in text or "-> \"n:layer2_0_conv1\"" in text


def test_labels_show_attributes_of_every_op() -> None:
    graph = archdsl.compile("model M() { in x: [N, 8, T]\n attn = MultiheadSelfAttention(2)\n"
                            " out x |> transpose(1, 2) |> attn |> select(1, 0) |> Dropout(0.1) }")
    labels = [viz.op_label(n.op) for n in graph.nodes]
    assert labels == ["transpose dim0=1, dim1=2", "multihead_self_attention heads=2", "select dim=1, index=0",
                      "dropout p=0.1"]


def test_shape_labels_drop_doubled_parentheses() -> None:
    graph = archdsl.compile("model M() { in x: [N, 3, H, W]\n a = Conv2d(8, 3, stride=2, padding=1)\n"
                            " b = Conv2d(8, 3, stride=2, padding=1)\n out x |> a |> b }")
    text = viz.to_dot(graph)
    assert "((" not in text and "(H + 1)//2" in text


def test_side_by_side_frames_each_graph(resnet: archdsl.Graph) -> None:
    text = viz.side_by_side({"training": resnet, "deploy": resnet}, depth=2, title="TinyResNet")
    assert 'subgraph "cluster_g0"' in text and 'subgraph "cluster_g1"' in text
    assert '"g0/in:image" -> "g0/n:conv1"' in text and '"g1/in:image" -> "g1/n:conv1"' in text
    assert 'label="training"' in text and 'label="deploy"' in text
