"""Parameter and MAC counts against the built module and torch's FlopCounterMode."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import archdsl
from archdsl.analysis import bind, stats, to_csv, to_json, to_text
from archdsl.ir.dims import SymDim
from tests.tiny_resnet import with_block

RESNET = with_block("""\
model TinyResNet(num_classes: int = 10) {
  in image: [N, 3, H, W]
  conv1 = Conv2d(8, 3, stride=2, padding=1, bias=false)
  bn1 = BatchNorm2d()
  layer1 = [BasicBlock(8) for i in range(2)]
  layer2 = [BasicBlock(16, stride=2 if i == 0 else 1) for i in range(2)]
  fc = Linear(num_classes)
  out image |> conv1 |> bn1 |> relu |> MaxPool2d(3, stride=2, padding=1)
            |> layer1 |> layer2 |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
""")

DEPTHWISE = """
model DepthwiseNet() {
  in x: [N, 3, H, W]
  stem = Conv2d(8, 3, stride=2, padding=1)
  dw = Conv2d(8, 3, padding=1, groups=8, bias=false)
  pw = Conv2d(16, 1)
  dw2 = Conv2d(16, 5, stride=2, padding=2, groups=16)
  pw2 = Conv2d(12, 1, bias=false)
  head = Linear(5)
  out x |> stem |> relu |> dw |> pw |> relu |> dw2 |> pw2 |> AdaptiveAvgPool2d(1) |> flatten |> head
}
"""

MLP = """
model MatMulMLP(d: int = 12) {
  in x: [N, T, 8]
  in y: [N, 16, 10]
  in p: [N, S, T]
  fc1 = Linear(16)
  fc2 = Linear(d)
  fc3 = Linear(6, bias=false)
  out (p @ ((x |> fc1 |> relu) @ y)) |> fc2 |> relu |> fc3
}
"""

SHARED = """
model Tied() {
  in x: [N, 8]
  fc = Linear(8)
  out x |> fc |> relu |> fc
}
"""

SPECS = {"resnet": RESNET, "depthwise": DEPTHWISE, "mlp": MLP, "shared": SHARED}
SIZES = {"resnet": {"N": 2, "H": 19, "W": 16}, "depthwise": {"N": 1, "H": 9, "W": 12},
         "mlp": {"N": 3, "T": 5, "S": 7}, "shared": {"N": 4}}


def _inputs(graph: archdsl.Graph) -> list[torch.Tensor]:
    return [torch.randn(*[int(d) for d in t.shape]) for t in graph.inputs.values()]


@pytest.mark.parametrize("name", SPECS)
def test_param_total_equals_built_module(name: str) -> None:
    graph = archdsl.compile(SPECS[name])
    module = archdsl.build(graph)
    s = stats(graph)
    assert s.params == sum(p.numel() for p in module.parameters())
    assert s.buffers == sum(b.numel() for b in module.buffers())
    assert sum(r.params for r in s.rows) == s.params


@pytest.mark.parametrize("name", SPECS)
def test_macs_equal_flop_counter_half(name: str) -> None:
    graph = bind(archdsl.compile(SPECS[name]), SIZES[name])
    module = archdsl.build(graph).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*_inputs(graph))
    macs = stats(graph).macs
    assert isinstance(macs, int) and macs > 0
    assert macs == counter.get_total_flops() // 2


def test_symbolic_macs_evaluate_to_bound_macs() -> None:
    graph = archdsl.compile(RESNET)
    symbolic = stats(graph).macs
    assert isinstance(symbolic, SymDim) and symbolic.symbols == {"N", "H", "W"}
    sizes = SIZES["resnet"]
    assert symbolic.evaluate(sizes) == stats(bind(graph, sizes)).macs


def test_partial_binding_keeps_unbound_symbols() -> None:
    graph = bind(archdsl.compile(RESNET), {"H": 32, "W": 32})
    s = stats(graph)
    assert s.inputs == {"image": "[N, 3, 32, 32]"}
    assert isinstance(s.macs, SymDim) and s.macs.symbols == {"N"}
    assert s.macs.evaluate({"N": 3}) == 3 * stats(bind(graph, {"N": 1})).macs


def test_shared_params_count_once_at_first_use() -> None:
    rows = stats(archdsl.compile(SHARED)).rows
    assert [(r.name, r.params) for r in rows] == [("fc", 72), ("relu", 0), ("fc", 0)]


def test_depth_groups_blocks_with_docs() -> None:
    s = stats(bind(archdsl.compile(RESNET), SIZES["resnet"]), depth=1)
    names = [r.name for r in s.rows]
    assert names[:4] == ["conv1", "bn1", "relu", "max_pool2d"]
    assert names[4:8] == ["layer1.0", "layer1.1", "layer2.0", "layer2.1"]
    block = s.rows[names.index("layer2.0")]
    assert (block.op, block.nodes, block.doc) == ("block", 9, "Two 3x3 convs with a residual.")
    assert block.params == 8 * 16 * 9 + 16 * 16 * 9 + 16 * 8 + 3 * 2 * 16
    full = stats(bind(archdsl.compile(RESNET), SIZES["resnet"]))
    assert (s.params, s.macs) == (full.params, full.macs)


def test_depth_counts_a_list_entry_with_its_list() -> None:
    graph = archdsl.compile(RESNET)
    one = [r.name for r in stats(graph, depth=1).rows]
    assert "layer1.0" in one and "layer1" not in one
    two = [r.name for r in stats(graph, depth=2).rows]
    assert "layer2.0.downsample.0" in two and "layer2.0.downsample" not in two   # ops inside the entry
    assert not any(name.count(".") == 0 and name.startswith("layer") for name in two)


def test_text_table_has_totals_and_docs() -> None:
    text = to_text(stats(bind(archdsl.compile(RESNET), SIZES["resnet"]), depth=1))
    assert "Two 3x3 convs with a residual." in text
    total = next(line for line in text.splitlines() if line.startswith("total"))
    graph = archdsl.compile(RESNET)
    assert f"{graph.num_params():,}" in total
    assert "MACs" in text.splitlines()[1]


def test_json_and_csv_parse() -> None:
    s = stats(bind(archdsl.compile(DEPTHWISE), {"N": 1}), depth=1)
    doc = json.loads(to_json(s))
    assert doc["total"]["params"] == s.params
    assert isinstance(doc["total"]["macs"], str) and "H" in doc["total"]["macs"]
    assert [r["name"] for r in doc["rows"]] == [r.name for r in s.rows]
    rows = list(csv.DictReader(io.StringIO(to_csv(s))))
    assert rows[-1]["name"] == "total" and int(rows[-1]["params"]) == s.params
    assert len(rows) == len(s.rows) + 1
