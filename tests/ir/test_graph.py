"""The Graph IR: JSON round trips, a stable text form, and a networkx view consistent with node order."""

from __future__ import annotations

import networkx as nx
import pytest

import archdsl
from archdsl.ir.graph import Graph
from archdsl.ir.printer import print_graph
from tests.tiny_resnet import with_block

RESNET_LIKE = with_block("""\
model Net(num_classes: int = 10) {
  in image: [N, 3, H, W]
  conv1 = Conv2d(16, 7, stride=2, padding=3, bias=false)
  bn1 = BatchNorm2d()
  layer1 = [BasicBlock(16) for i in range(2)]
  layer2 = [BasicBlock(32, stride=2 if i == 0 else 1) for i in range(2)]
  fc = Linear(num_classes)
  out image |> conv1 |> bn1 |> relu |> MaxPool2d(3, stride=2, padding=1) |> layer1 |> layer2
            |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
""")

BRANCHES = """\
model Branches() {
  in x: [N, 8, H, W]
  in y: [N, 8, H, W]
  rep = reparam {
    a = seq[Conv2d(8, 3, padding=1), BatchNorm2d()]
    b = Conv2d(8, 1)
  }
  a, b = chunk(x + y * 0.5, 2, dim=1)
  out first = relu(a |> AvgPool2d(2)) - tanh(b |> AvgPool2d(2))
  out second = x |> rep
}
"""

SEQUENCE = """\
model Sequence(d: int = 16) {
  in tokens: [B, T, d]
  body = seq{"block{i}": seq[Linear(d), tanh] for i in range(3)}
  out tokens |> body |> sigmoid
}
"""

SPECS = {"resnet-like": RESNET_LIKE, "branches": BRANCHES, "sequence": SEQUENCE}


@pytest.fixture(scope="module", params=sorted(SPECS))
def graph(request: pytest.FixtureRequest) -> Graph:
    """One compiled spec per parameter."""
    return archdsl.compile(SPECS[request.param])


def test_json_round_trip(graph: Graph) -> None:
    """Graph.from_json(g.to_json()) == g, and serialising again gives the same text."""
    again = Graph.from_json(graph.to_json())
    assert again == graph
    assert again.to_json() == graph.to_json()


def test_printer_is_stable(graph: Graph) -> None:
    """The text form is the same for a recompiled graph and for one loaded back from JSON."""
    text = print_graph(graph)
    assert text == print_graph(Graph.from_json(graph.to_json()))
    assert text == print_graph(archdsl.compile(SPECS[graph_key(graph)]))
    assert text.splitlines()[0].startswith(f"graph {graph.name}(")
    assert sum(line.startswith("  %") for line in text.splitlines()) == len(graph.nodes)


def graph_key(graph: Graph) -> str:
    """The SPECS key a graph was compiled from."""
    return next(k for k, text in SPECS.items() if f"model {graph.name}(" in text)


def test_networkx_view_is_a_dag_in_node_order(graph: Graph) -> None:
    """to_networkx() is acyclic, holds the inputs and every node, and node order is a topological order."""
    g = graph.to_networkx()
    assert nx.is_directed_acyclic_graph(g)
    assert set(g.nodes) == set(graph.inputs) | {n.name for n in graph.nodes}
    position = {name: -1 for name in graph.inputs} | {n.name: i for i, n in enumerate(graph.nodes)}
    assert all(position[u] < position[v] for u, v in g.edges)
    producers = graph.producers()
    assert g.number_of_edges() == len({(producers[v].name if v in producers else v, n.name)
                                       for n in graph.nodes for v in n.inputs})


def test_printed_form_of_a_small_graph() -> None:
    """A golden text form: inputs, one line per value with attributes and module, outputs, parameters."""
    g = archdsl.compile("model Tiny() {\n  in x: [N, 4]\n  fc = Linear(2, bias=false)\n  out relu(x |> fc)\n}\n")
    assert print_graph(g) == """\
graph Tiny(%x: [N, 4]) {
  %fc: [N, 2] = linear(%x) {out_features=2, bias=false}  # fc
  %relu: [N, 2] = relu(%fc)
  return out=%relu
}
params (8 trainable elements):
  param fc.weight: [2, 4] init=kaiming_uniform(a=sqrt(5))"""
