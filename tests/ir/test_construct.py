"""Compact unvalidated construction (archdsl.ir.construct): instances equal, hash, dump and round-trip exactly
like validated ones, and are smaller."""

from __future__ import annotations

import pickle
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from archdsl.ir.construct import compact, maker, trusted
from archdsl.ir.dims import SymDim
from archdsl.ir.frozen import FrozenDict
from archdsl.ir.graph import Graph, Node, Param
from archdsl.ir.types import Span, TensorType, make_span
from archdsl.ops.linear import Linear

N = SymDim.symbol("N")
dims = st.one_of(st.integers(0, 4096), st.sampled_from([N, N * 2 + 1, (N + 1) // 2]))
dtypes = st.sampled_from(["float32", "float16", "int64", "bool"])


def same(made: BaseModel, validated: BaseModel, all_set: bool = False) -> None:
    """Everything a reader can tell apart: equality both ways, hash, field values, dumps, JSON, pickling (a made
    instance counts every field as set: ``all_set`` when the validated one was given fewer)."""
    assert made == validated and validated == made
    assert hash(made) == hash(validated)
    assert made.__dict__ == validated.__dict__ and list(made.__dict__) == list(validated.__dict__)
    assert made.model_fields_set == (set(type(made).model_fields) if all_set else validated.model_fields_set)
    assert made.model_dump() == validated.model_dump()
    assert made.model_dump_json() == validated.model_dump_json()
    assert type(validated).model_validate_json(made.model_dump_json()) == validated
    assert pickle.loads(pickle.dumps(made)) == validated
    assert repr(made) == repr(validated)


@given(st.lists(dims, max_size=4), dtypes)
def test_tensor_type_made_and_with_shape_equal_validated(shape: list, dtype: str) -> None:
    validated = TensorType(shape=tuple(shape), dtype=dtype)
    same(maker(TensorType)(tuple(shape), dtype), validated)
    same(TensorType(shape=(1,), dtype=dtype).with_shape(shape), validated)


def test_with_shape_validates_what_is_not_a_dim() -> None:
    t = TensorType(shape=(N, 4))
    assert t.with_shape([N, "2*N"]).shape == (N, N * 2)          # a dim's text is parsed, as validation does
    with pytest.raises(ValueError):
        t.with_shape([N, True])
    const = SymDim({(): 3})                                       # a constant SymDim becomes an int
    assert t.with_shape([const]).shape == (3,) and type(t.with_shape([const]).shape[0]) is int


def test_tensor_type_equality_is_pydantic_equality() -> None:
    a = TensorType(shape=(N, 4))
    assert a != TensorType(shape=(N, 4), dtype="float16") and a != TensorType(shape=(N, 5))
    assert a != Span() and a != (N, 4) and a != "x"
    assert {a, maker(TensorType)((N, 4), "float32")} == {a}


@given(st.text(max_size=12), st.integers(1, 10**6), st.integers(1, 500), st.integers(1, 10**6), st.integers(1, 500))
def test_span_made_equals_validated(file: str, line: int, column: int, end_line: int, end_column: int) -> None:
    same(make_span(file, line, column, end_line, end_column),
         Span(file=file, line=line, column=column, end_line=end_line, end_column=end_column))


@given(st.lists(st.integers(1, 512), min_size=1, max_size=4), st.booleans(), st.sampled_from([None, 3, 64]))
def test_param_made_and_renamed_equal_validated(shape: list[int], buffer: bool, fan_in: int | None) -> None:
    fields = dict(shape=tuple(shape), dtype="float32", init="zeros", buffer=buffer, axis="none", fan_in=fan_in,
                  layout=("out",) + ("in",) * (len(shape) - 1), groups=1)
    validated = Param(name="a.weight", **fields)
    made = maker(Param)("a.weight", *fields.values())
    same(made, validated)
    same(made.renamed("b.weight"), Param(name="b.weight", **fields))
    same(trusted(Param, {"name": "a.weight", "shape": tuple(shape)}), Param(name="a.weight", shape=tuple(shape)),
         all_set=True)


def test_node_and_graph_made_equal_validated() -> None:
    t = TensorType(shape=(N, 8))
    span = Span(file="m.arch", line=3, column=5, end_line=3, end_column=9)
    fields = dict(name="fc", op=Linear(out_features=8), inputs=("x",), outputs=("fc",), types=(t,),
                  params=FrozenDict({"weight": "fc.weight"}), module="fc", scope=("fc",), span=span, tags=())
    node = maker(Node)(*fields.values())
    same(node, Node(**fields))
    same(trusted(Node, {k: v for k, v in fields.items() if k not in ("tags", "scope")}),
         Node(**{k: v for k, v in fields.items() if k not in ("tags", "scope")}), all_set=True)
    param = Param(name="fc.weight", shape=(8, 8))
    graph = trusted(Graph, {"name": "g", "inputs": FrozenDict({"x": t}), "nodes": (node,),
                            "outputs": FrozenDict({"out": "fc"}), "params": FrozenDict({"fc.weight": param})})
    validated = Graph(name="g", inputs={"x": t}, nodes=(Node(**fields),), outputs={"out": "fc"},
                      params={"fc.weight": param})
    assert graph == validated and graph.to_json() == validated.to_json()
    assert Graph.from_json(graph.to_json()) == validated


def test_made_models_stay_immutable() -> None:
    p = maker(Param)("a", (2,), "float32", "zeros", False, "none", None, (), 1)
    with pytest.raises(Exception, match="frozen"):
        p.name = "b"          # type: ignore[misc]
    copy = p.model_copy(update={"name": "b"})
    assert (p.name, copy.name) == ("a", "b") and copy.shape == p.shape


def test_made_instances_are_smaller_than_validated() -> None:
    """The point of the maker: field values in the storage the class's instances share, not a dict each."""
    names = [f"layer{i}.weight" for i in range(2000)]
    fields = ((64, 64), "float32", "zeros", False, "none", 64, ("out", "in"), 1)
    make = maker(Param)

    def traced(build) -> int:
        tracemalloc.start()
        try:
            kept = [build(n) for n in names]
            size = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert len(kept) == len(names)
        return size

    small = traced(lambda n: make(n, *fields))
    large = traced(lambda n: Param(name=n, shape=fields[0], init="zeros", fan_in=64, layout=("out", "in")))
    assert small < 0.8 * large


@compact
class Pair(BaseModel):
    """A model defined with ``compact``: its instances made before any validated one."""

    model_config = ConfigDict(frozen=True)
    left: int
    right: str = "r"


def test_compact_prepares_a_new_class() -> None:
    same(maker(Pair)(1, "x"), Pair(left=1, right="x"))
    same(trusted(Pair, {"left": 2}), Pair(left=2), all_set=True)
    assert maker(Pair) is maker(Pair)
