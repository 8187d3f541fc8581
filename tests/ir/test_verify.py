"""The verifier on graphs built by hand or loaded from JSON: every kind of malformation, errors and warnings."""

from __future__ import annotations

import json

import pytest

import archdsl
from archdsl.errors import VerifyError
from archdsl.ir.dims import SymDim
from archdsl.ir.graph import Graph, Node, Param
from archdsl.ir.types import TensorType
from archdsl.ops.activation import ReLU, Tanh
from archdsl.ops.linear import Linear
from archdsl.ops.shape import Chunk
from archdsl.ops.tensor import Add
from archdsl.verify import diagnostics, verify

N = SymDim.symbol("N")
T4 = TensorType(shape=(N, 4))


def node(name: str, op, inputs: tuple[str, ...], types: tuple[TensorType, ...] = (T4,),
         outputs: tuple[str, ...] | None = None, params: dict[str, str] | None = None) -> Node:
    """A node whose (first) output value is named like the node."""
    return Node(name=name, op=op, inputs=inputs, outputs=outputs or (name,), types=types, params=params or {})


def graph(*nodes: Node, outputs: dict[str, str] | None = None, params: dict[str, Param] | None = None,
          inputs: dict[str, TensorType] | None = None) -> Graph:
    """A graph over input ``x: [N, 4]`` whose output is the last node's value."""
    outputs = outputs if outputs is not None else {"out": nodes[-1].outputs[0]}
    return Graph(name="g", inputs=inputs or {"x": T4}, nodes=nodes, outputs=outputs, params=params or {})


def messages(g: Graph, severity: str = "error") -> list[str]:
    """The verifier's messages of one severity."""
    return [d.message for d in diagnostics(g) if d.severity == severity]


LINEAR_PARAMS = {"fc.weight": Param(name="fc.weight", shape=(4, 4)), "fc.bias": Param(name="fc.bias", shape=(4,))}
LINEAR_MAP = {"weight": "fc.weight", "bias": "fc.bias"}


def test_a_well_formed_graph() -> None:
    """No diagnostics at all; verify returns no warnings."""
    g = graph(node("fc", Linear(out_features=4), ("x",), params=LINEAR_MAP), node("r", ReLU(), ("fc",)),
              params=LINEAR_PARAMS)
    assert diagnostics(g) == []
    assert verify(g) == []


def test_dangling_value() -> None:
    """A node reads a value nothing defines."""
    assert messages(graph(node("r", Add(), ("x", "ghost")))) == [
        "add node 'r' reads 'ghost', which is not defined (a dangling value)"]


def test_cycle() -> None:
    """Two nodes reading each other's outputs: the cycle is found with networkx and named."""
    g = graph(node("a", Add(), ("x", "b")), node("b", Tanh(), ("a",)))
    assert messages(g) == ["the graph has a cycle: 'a' -> 'b' -> 'a'"]
    with pytest.raises(VerifyError, match="cycle"):
        verify(g)


def test_self_loop() -> None:
    """A node reading its own output."""
    assert messages(graph(node("a", Add(), ("x", "a")))) == ["the graph has a cycle: 'a' -> 'a'"]


def test_nodes_out_of_order() -> None:
    """An acyclic graph whose nodes are not in topological order."""
    g = graph(node("b", Tanh(), ("a",)), node("a", ReLU(), ("x",)), outputs={"out": "b"})
    assert messages(g) == ["tanh node 'b' reads 'a' before relu node 'a' defines it"]


def test_value_defined_twice() -> None:
    """Two nodes write the same value."""
    g = graph(node("a", ReLU(), ("x",)), node("b", Tanh(), ("x",), outputs=("a",)))
    assert "value 'a' is defined twice (again by tanh node 'b')" in messages(g)


def test_node_names_unique() -> None:
    """Two nodes with one name."""
    g = graph(node("a", ReLU(), ("x",)), node("a", Tanh(), ("a",), outputs=("b",)))
    assert messages(g) == ["two nodes are named 'a'"]


def test_types_must_match_the_shape_rule() -> None:
    """A node typed differently from what its op infers (an inconsistent edit)."""
    wrong = TensorType(shape=(N, 5))
    assert messages(graph(node("r", ReLU(), ("x",), types=(wrong,)))) == [
        "relu node 'r' is typed [N, 5] but its inputs give [N, 4]"]


def test_one_type_per_output() -> None:
    """Outputs and types must pair up."""
    assert "relu node 'r' has 1 output(s) but 2 type(s)" in messages(graph(node("r", ReLU(), ("x",), types=(T4, T4))))


def test_op_arity() -> None:
    """A binary op with one input (its shape rule is not even run into an IndexError)."""
    assert messages(graph(node("s", Add(), ("x",)))) == ["add node 's' takes 2 input(s), got 1",
                                                         "add node 's': list index out of range"]


def test_shape_rule_failure() -> None:
    """The op's own rule refuses its inputs."""
    g = graph(node("fc", Linear(out_features=4), ("x",), params=LINEAR_MAP), params=LINEAR_PARAMS,
              inputs={"x": TensorType(shape=(N, SymDim.symbol("D")))})
    assert messages(g) == ["linear node 'fc': linear needs a known feature size on the last axis, got [N, D]"]


def test_parameters_declared_used_and_shaped() -> None:
    """Undeclared, missing, unknown and mis-shaped parameters; an unused declaration is a warning."""
    fc = Linear(out_features=4)
    assert messages(graph(node("fc", fc, ("x",), params=LINEAR_MAP))) == [
        "linear node 'fc' uses parameter 'fc.weight', which is not declared",
        "linear node 'fc' uses parameter 'fc.bias', which is not declared"]
    assert messages(graph(node("fc", fc, ("x",), params={"weight": "fc.weight"}), params=LINEAR_PARAMS)) == [
        "linear node 'fc' needs its parameter 'bias', which it is not given"]
    odd = {**LINEAR_MAP, "scale": "fc.weight"}
    assert messages(graph(node("fc", fc, ("x",), params=odd), params=LINEAR_PARAMS)) == [
        "linear node 'fc' has no parameter 'scale' (given 'fc.weight')"]
    small = {**LINEAR_PARAMS, "fc.weight": Param(name="fc.weight", shape=(4, 3))}
    assert messages(graph(node("fc", fc, ("x",), params=LINEAR_MAP), params=small)) == [
        "parameter 'fc.weight' is declared [4, 3] but linear node 'fc' needs [4, 4]"]
    extra = {**LINEAR_PARAMS, "head.weight": Param(name="head.weight", shape=(2, 4))}
    g = graph(node("fc", fc, ("x",), params=LINEAR_MAP), params=extra)
    assert messages(g, "warning") == ["parameter 'head.weight' is declared but no node uses it"]


def test_unknown_dtypes() -> None:
    """Inputs, node results and parameters must use known dtypes."""
    odd = TensorType(shape=(N, 4), dtype="float8")
    g = graph(node("r", ReLU(), ("x",), types=(odd,)), inputs={"x": odd},
              params={"p": Param(name="p", shape=(1,), dtype="complex32")})
    found = messages(g)
    for text in ("input 'x' has unknown dtype 'float8'", "relu node 'r' has unknown dtype 'float8'",
                 "parameter 'p' has unknown dtype 'complex32'"):
        assert text in found


def test_outputs_and_inputs() -> None:
    """Outputs must be defined and exist; inputs must be used."""
    assert messages(graph(node("r", ReLU(), ("x",)), outputs={"out": "nope"})) == [
        "output 'out' refers to undefined value 'nope'"]
    assert "graph 'g' has no outputs" in messages(graph(node("r", ReLU(), ("x",)), outputs={}))
    g = graph(node("r", ReLU(), ("x",)), inputs={"x": T4, "unused": T4})
    assert messages(g) == ["input 'unused' is never used"]


def test_dead_results_are_warnings() -> None:
    """A node nobody reads, and an unused output of a multi-output node, warn but do not fail verify()."""
    half = TensorType(shape=(N, 2))
    g = graph(node("c", Chunk(chunks=2, dim=1), ("x",), types=(half, half), outputs=("c0", "c1")),
              node("dead", Tanh(), ("x",)), node("r", ReLU(), ("c0",), types=(half,)))
    assert messages(g, "warning") == ["output 'c1' of chunk node 'c' is never used",
                                      "the result of tanh ('dead') is never used"]
    assert [d.severity for d in verify(g)] == ["warning", "warning"]


def test_broken_json_is_caught() -> None:
    """A compiled graph edited in its JSON form (a cycle introduced) fails verification."""
    g = archdsl.compile("model M() {\n  in x: [N, 4]\n  out tanh(relu(x))\n}\n")
    doc = json.loads(g.to_json())
    doc["nodes"][0]["inputs"] = [doc["nodes"][1]["outputs"][0]]
    broken = Graph.from_json(json.dumps(doc))
    with pytest.raises(VerifyError) as info:
        verify(broken)
    assert [d.message for d in info.value.diagnostics] == ["the graph has a cycle: 'relu' -> 'tanh' -> 'relu'",
                                                           "input 'x' is never used"]
    assert str(info.value.diagnostics[0].span) == "<string>:3:12"
