"""Re-used block expansions give exactly the graph that evaluating every block body gives."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.elaborate.apply import Applier
from archdsl.ir.graph import Graph
from archdsl.ir.printer import print_graph


def _fingerprint(g: Graph) -> tuple:
    return print_graph(g), [n.scope for n in g.nodes], [n.span for n in g.nodes], g.params, g.module_docs


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "mobilenet_v3_small", "repvgg_a0", "vit_b_16"])
def test_replay_equals_full_evaluation(name: str, monkeypatch) -> None:
    replayed = archdsl.compile(name)
    monkeypatch.setattr(Applier, "_expansion_key", lambda self, layer, inputs: None)
    assert _fingerprint(archdsl.compile(name)) == _fingerprint(replayed)


def test_a_named_block_applied_twice_shares_its_weights() -> None:
    g = archdsl.compile("block B() { in x: [N, 8]; fc = Linear(8); out x |> fc |> relu }\n"
                        "model M() { in x: [N, 8]; b = B(); out x |> b |> b }")
    assert list(g.params) == ["b.fc.weight", "b.fc.bias"]
    assert [n.module for n in g.nodes if n.params] == ["b.fc", "b.fc"]


def test_two_anonymous_applications_still_collide() -> None:
    with pytest.raises(archdsl.ElaborationError, match="both want the parameter name"):
        archdsl.compile("block B() { in x: [N, 8]; fc = Linear(8); out x |> fc }\n"
                        "model M() { in x: [N, 8]; out x |> B() |> B() }")


def test_a_block_fed_one_tensor_twice_is_not_confused_with_two_tensors() -> None:
    g = archdsl.compile("block Two() { in a: [N, 4]; in b: [N, 4]; out a - b }\n"
                        "model M() { in x: [N, 4]; in y: [N, 4]; p = Two(); q = Two()\n"
                        "  out (x, x) |> p + (x, y) |> q }")
    subs = [n for n in g.nodes if n.op.name == "sub"]
    assert [n.inputs for n in subs] == [("x", "x"), ("x", "y")]
