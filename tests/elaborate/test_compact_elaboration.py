"""The elaborator's shared and compact structures (made nodes and parameters, shared tuples and spans, flat cache
keys, lazy argument spans) give exactly the IR that plain, validated construction gives."""

from __future__ import annotations

import pytest

from archdsl import zoo
from archdsl.elaborate import elaborate_model, load
from archdsl.elaborate.containers import arg_spans
from archdsl.elaborate.replay import plain_key
from archdsl.elaborate.session import Session
from archdsl.ir.graph import Graph, Node, Param
from archdsl.ir.types import TensorType
from archdsl.syntax import ast as A
from archdsl.syntax.parser import parse_expression
from archdsl.verify import verify

MODELS = ["resnet18", "mobilenet_v3_small", "repvgg_a0", "mobileone_s0", "vit_b_16", "densenet121", "gla_lm",
          "efficientformer_l1"]

VARIED = """
block Unit(c: int, h: int) {
  "A documented residual unit."
  in x: [N, c]
  up = Linear(h)
  norm = BatchNorm1d()
  down = Linear(c)
  out x + (relu(x |> up |> norm) |> down)
}

model Varied() {
  in x: [N, 16]
  body = seq[Unit(16, 8 + i % 3) for i in range(7)]
  out x |> body
}
"""


def validated_copy(graph: Graph) -> Graph:
    """The graph rebuilt through pydantic validation from plain data (the slow, plain path)."""
    return Graph.from_json(graph.to_json())


def check_plain(graph: Graph) -> None:
    """Every node and parameter equals (and dumps like) its validated rebuild; the whole graph round-trips."""
    plain = validated_copy(graph)
    assert plain == graph and plain.to_json() == graph.to_json()
    for made, again in zip(graph.nodes, plain.nodes, strict=True):
        assert made == again and hash(made.types) == hash(again.types)
        assert made.model_dump() == Node.model_validate(made.model_dump()).model_dump()
        assert made.params == dict(again.params) and made.span == again.span
        assert all(type(t) is TensorType for t in made.types)
    for name, p in graph.params.items():
        assert p == plain.params[name] == Param.model_validate(p.model_dump()) and p.name == name


@pytest.mark.parametrize("name", MODELS)
def test_zoo_graphs_equal_their_validated_rebuild(name: str) -> None:
    ns, loader = load(zoo.spec_path(name))
    graph = elaborate_model(ns, loader, name)
    check_plain(graph)
    verify(graph, loader.sources)


def test_shared_tuples_and_spans_change_nothing() -> None:
    """A chain of units: nodes share their producer's outputs and types tuples and one span per statement."""
    ns, loader = load(VARIED)
    graph = elaborate_model(ns, loader, "Varied")
    check_plain(graph)
    nodes = {n.name: n for n in graph.nodes}
    norm, relu = nodes["body_0_norm"], nodes["body_0_relu"]
    assert relu.inputs is norm.outputs and relu.types == norm.types          # shared, not copied
    # (the types tuple is shared when the rules hand back the input's own type object: the process-wide rule
    # cache may hold an equal one from an earlier graph, so only equality is certain)
    # one span for the statement (from the second application on: the first one's body syntax is released after
    # it, and parsed again once for the second, see ast.release_body)
    assert nodes["body_2_norm"].span is nodes["body_1_norm"].span == nodes["body_0_norm"].span
    assert graph.nodes[0].params is not graph.nodes[2].params
    assert [n.params for n in graph.nodes if not n.params][0] is [n.params for n in graph.nodes if not n.params][-1]
    assert verify(graph, loader.sources) == []


@pytest.mark.parametrize("a, b", [(1, 1.0), (1, True), ([1], (1,)), ((1, (2,)), (1, [2])), ("1", 1), (None, 0),
                                  ((1, 2), ((1, 2),)), ((), ((),)), ([[1, 2], 3], [[1], 2, 3])])
def test_plain_keys_are_type_exact(a: object, b: object) -> None:
    assert plain_key(a) != plain_key(b) and plain_key(a) == plain_key(a) is not None
    assert hash(plain_key(a)) == hash(plain_key(a))


def test_plain_key_refuses_objects() -> None:
    assert plain_key([1, object()]) is None and plain_key(object()) is None
    assert plain_key((1, [2.5, "x", None, True])) == plain_key((1, [2.5, "x", None, True]))


def test_span_of_shares_one_span_per_node_and_stays_bounded(monkeypatch) -> None:
    from archdsl.elaborate import session as S

    monkeypatch.setattr(S, "SPAN_MEMO", 4)
    session = Session(builder=None, sources={})  # type: ignore[arg-type]
    exprs = [parse_expression(f"a + {i}", "f.arch", 3, 5) for i in range(10)]
    first = session.span_of(exprs[0])
    assert first == exprs[0].span and session.span_of(exprs[0]) is first
    for e in exprs:
        assert session.span_of(e) == e.span
    assert len(session.spans) <= 4
    again = session.span_of(exprs[0])
    assert again == first


def test_argument_spans_are_made_when_read() -> None:
    call = parse_expression("f(x, y, 3, k=4)", "f.arch", 2, 1)
    assert isinstance(call, A.Call)
    eager = {i: a.span for i, a in enumerate(call.args)} | {k: v.span for k, v in call.kwargs}
    assert dict(arg_spans(call)) == eager
    lazy = arg_spans(call, 2)          # after two tensor inputs: the third argument is the first attribute
    assert dict(lazy) == {0: call.args[2].span, "k": call.kwargs[0][1].span}
    assert lazy.get(0) == call.args[2].span and lazy.get(5) is None and len(lazy) == 2 and "k" in lazy
