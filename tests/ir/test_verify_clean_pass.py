"""The verifier's one pass for clean graphs (verify._clean_pass) gives what its general checks give: on clean graphs
(the path they take), and on graphs with each kind of error and warning, where it either gives the same findings
or leaves them to the general checks."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archdsl import verify as V
from archdsl.ir.dims import SymDim
from archdsl.ir.graph import Graph, Node, Param
from archdsl.ir.types import TensorType
from archdsl.ops.activation import ReLU
from archdsl.ops.base import apply_rules
from archdsl.ops.embed import Parameter
from archdsl.ops.linear import Linear
from archdsl.ops.norm import LayerNorm
from archdsl.ops.tensor import Add

N = SymDim.symbol("N")
T4 = TensorType(shape=(N, 4))
KINDS = ("linear", "norm", "relu", "add", "free")


def layers(kinds: list[str], widths: list[int], nested: bool) -> tuple[list[Node], dict[str, Param]]:
    """A clean chain on x: [N, 4]: each layer's parameters declared as the elaborator does (``module.local``, in
    order of use, the rule's shapes); "free" is a free Parameter [1, c] added to the chain."""
    nodes: list[Node] = []
    table: dict[str, Param] = {}
    types = {"x": T4}
    value = "x"

    def add(name: str, op, inputs: tuple[str, ...], module: str | None) -> str:
        _, outs, specs = apply_rules(op, [types[v] for v in inputs])
        params = {local: f"{module}.{local}" if local else str(module) for local in specs}
        for local, spec in specs.items():
            table[params[local]] = Param(name=params[local], shape=spec.shape, dtype=spec.dtype, init=spec.init)
        nodes.append(Node(name=name, op=op, inputs=inputs, outputs=(name,), types=tuple(outs), params=params,
                          module=module if specs else None))
        types[name] = outs[0]
        return name

    for i, (kind, width) in enumerate(zip(kinds, widths, strict=True)):
        module = f"body.{i // 2}.{kind}{i}" if nested else f"{kind}{i}"
        if kind == "linear":
            value = add(f"n{i}", Linear(out_features=width), (value,), module)
        elif kind == "norm":
            value = add(f"n{i}", LayerNorm(), (value,), module)
        elif kind == "relu":
            value = add(f"n{i}", ReLU(), (value,), None)
        elif kind == "add":
            value = add(f"n{i}", Add(), (value, value), None)
        else:
            channels = types[value].shape[-1]
            free = add(f"p{i}", Parameter(shape=(1, channels), init="zeros"), (), module)
            value = add(f"n{i}", Add(), (value, free), None)
    return nodes, table


MUTATIONS = ("dup_name", "param_shape", "param_missing", "param_dtype", "type_drift", "swap", "extra_param",
             "extra_input", "dead", "bad_module", "empty_component", "bad_param_name", "reorder_table", "share",
             "module_none", "bad_init", "undefined_output", "defined_twice", "nonfinite", "node_dtype", "no_outputs")


def mutate(kind: str, nodes: list[Node], table: dict[str, Param], inputs: dict, outputs: dict,  # noqa: C901
           j: int, k: int) -> None:
    """One defect (or a warning, or an unusual but clean form) at node ``j`` (``k``: another node); one branch per
    kind."""
    j, k = j % len(nodes), k % len(nodes)
    keys = list(table)
    key = keys[j % len(keys)] if keys else None
    with_params = [i for i, n in enumerate(nodes) if n.params]
    p = with_params[j % len(with_params)] if with_params else None

    def change(i: int, **fields) -> None:
        nodes[i] = nodes[i].model_copy(update=fields)

    if kind == "dup_name":
        change(j, name=nodes[k].name)
    elif kind == "param_shape" and key:
        table[key] = table[key].model_copy(update={"shape": (7,)})
    elif kind == "param_missing" and key:
        del table[key]
    elif kind == "param_dtype" and key:
        table[key] = table[key].model_copy(update={"dtype": "float8"})
    elif kind == "type_drift":
        change(j, types=(TensorType(shape=(N, 5)),))
    elif kind == "swap":
        nodes[j], nodes[k] = nodes[k], nodes[j]
    elif kind == "extra_param":
        table["spare.weight"] = Param(name="spare.weight", shape=(4,))
    elif kind == "extra_input":
        inputs["y"] = T4
    elif kind == "dead":
        nodes.insert(j, Node(name="dead", op=ReLU(), inputs=("x",), outputs=("dead",), types=(T4,)))
    elif kind == "bad_module" and p is not None:
        change(p, module="training")
    elif kind == "empty_component" and p is not None:
        change(p, module=f"{nodes[p].module}..x")
    elif kind == "bad_param_name" and key:
        table[key] = table[key].model_copy(update={"name": "eval.weight"})
    elif kind == "reorder_table":
        items = list(table.items())[::-1]
        table.clear()
        table.update(items)
    elif kind == "share" and p is not None:
        other = with_params[k % len(with_params)]
        change(p, params={local: nodes[other].params.get(local, full) for local, full in nodes[p].params.items()})
    elif kind == "module_none" and p is not None:
        change(p, module=None)
    elif kind == "bad_init" and key:
        table[key] = table[key].model_copy(update={"init": "nonsense("})
    elif kind == "undefined_output":
        outputs["out"] = "ghost"
    elif kind == "defined_twice":
        change(j, outputs=(nodes[k].outputs[0],))
    elif kind == "nonfinite":
        norms = [i for i, n in enumerate(nodes) if isinstance(n.op, LayerNorm)]
        if norms:
            change(norms[j % len(norms)], op=LayerNorm(eps=math.inf))
    elif kind == "node_dtype":
        change(j, types=tuple(TensorType(shape=t.shape, dtype="float8") for t in nodes[j].types))
    elif kind == "no_outputs":
        outputs.clear()


def details(found: list) -> list[tuple]:
    return [(d.severity, d.message, d.span, d.hint) for d in found]


@given(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(2, 6)), min_size=1, max_size=8), st.booleans(),
       st.lists(st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 20), st.integers(0, 20)), max_size=2))
def test_the_clean_pass_gives_the_general_checks_findings(chain: list[tuple[str, int]], nested: bool,
                                                          defects: list[tuple[str, int, int]]) -> None:
    nodes, table = layers([c[0] for c in chain], [c[1] for c in chain], nested)
    inputs, outputs = {"x": T4}, {"out": nodes[-1].outputs[0]}
    for kind, j, k in defects:
        mutate(kind, nodes, table, inputs, outputs, j, k)
    g = Graph(name="g", inputs=inputs, nodes=tuple(nodes), outputs=outputs, params=table)
    fast, general = V._clean_pass(g), V._general(g)
    if not defects:
        assert fast == general == []            # a clean graph takes the one pass and has nothing to report
    if fast is not None:
        assert details(fast) == details(general)


@pytest.mark.parametrize("kind", MUTATIONS)
def test_each_defect_on_a_fixed_graph(kind: str) -> None:
    """Every mutation on one graph with every kind of layer, nested names: the same findings either way."""
    for j, k in [(0, 1), (3, 5), (7, 2)]:
        nodes, table = layers(list(KINDS) * 2, [3, 4, 5, 6, 3, 4, 5, 6, 3, 4], True)
        inputs, outputs = {"x": T4}, {"out": nodes[-1].outputs[0]}
        mutate(kind, nodes, table, inputs, outputs, j, k)
        g = Graph(name="g", inputs=inputs, nodes=tuple(nodes), outputs=outputs, params=table)
        assert details(V.diagnostics(g)) == details(V._general(g))


def test_unread_inputs_unused_parameters_and_dead_results_come_from_the_clean_pass() -> None:
    """The findings a graph without other errors can have are the one pass's own (in the general path's order)."""
    nodes, table = layers(["linear", "norm", "relu"], [3, 3, 3], False)
    inputs, outputs = {"x": T4}, {"out": nodes[-1].outputs[0]}
    for kind in ("extra_input", "extra_param", "dead"):
        mutate(kind, nodes, table, inputs, outputs, 1, 0)
    g = Graph(name="g", inputs=inputs, nodes=tuple(nodes), outputs=outputs, params=table)
    fast = V._clean_pass(g)
    assert fast is not None and details(fast) == details(V._general(g))
    assert [d.message for d in fast] == ["input 'y' is never used",
                                         "parameter 'spare.weight' is declared but no node uses it",
                                         "the result of relu ('dead') is never used"]


def test_the_rule_memo_starts_again_without_changing_findings(monkeypatch) -> None:
    """Past RULE_MEMO keys the one pass's memo keeps only its newer half: a clean graph stays clean."""
    nodes, table = layers(["linear", "norm", "relu", "add", "free"] * 4, [2, 3, 4, 5, 6] * 4, True)
    g = Graph(name="g", inputs={"x": T4}, nodes=tuple(nodes), outputs={"out": nodes[-1].outputs[0]}, params=table)
    monkeypatch.setattr(V, "RULE_MEMO", 2)
    assert V._clean_pass(g) == []
