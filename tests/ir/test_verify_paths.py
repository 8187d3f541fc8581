"""The verifier's fast paths give what its general checks give: unused parameters found in one ordered pass or
through the set of used names, names checked below a known-good parent path, the bounded rule memo."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from archdsl import verify as V
from archdsl.ir.dims import SymDim
from archdsl.ir.graph import Graph, Node, Param
from archdsl.ir.types import TensorType
from archdsl.ops.linear import Linear
from archdsl.ops.norm import LayerNorm

N = SymDim.symbol("N")
T4 = TensorType(shape=(N, 4))


def chain(modules: list[str], uses: list[list[int]], declared: list[int]) -> Graph:
    """Linear(4) layers on x: [N, 4]; layer i uses the parameters numbered ``uses[i]`` (``p{k}``, mapped as
    weight/bias/...), the table declares the numbers in ``declared`` (in that order), each [4, 4]."""
    nodes, value = [], "x"
    for i, (module, used) in enumerate(zip(modules, uses, strict=True)):
        locals_ = ["weight", "bias", "extra", "more"]
        params = {locals_[j]: f"p{k}" for j, k in enumerate(used[:4])}
        nodes.append(Node(name=f"v{i}", op=Linear(out_features=4), inputs=(value,), outputs=(f"v{i}",), types=(T4,),
                          params=params, module=module))
        value = f"v{i}"
    table = {f"p{k}": Param(name=f"{modules[k % len(modules)]}.w{k}", shape=(4, 4)) for k in declared}
    return Graph(name="g", inputs={"x": T4}, nodes=tuple(nodes), outputs={"out": value}, params=table)


@given(st.integers(1, 6).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.integers(0, 9), max_size=3), min_size=n, max_size=n),
    st.lists(st.integers(0, 9), unique=True))))
def test_unused_params_ordered_pass_equals_the_set_of_used_names(case: tuple[list[list[int]], list[int]]) -> None:
    uses, declared = case
    g = chain([f"l{i}" for i in range(len(uses))], uses, declared)
    assert [d.message for d in V._unused_params(g)] == [d.message for d in V._unused_by_set(g)]


def test_unused_params_in_declared_order_and_out_of_order() -> None:
    in_order = chain(["a", "b"], [[0, 1], [2]], [0, 1, 2, 3, 4])
    assert [d.message for d in V._unused_params(in_order)] == [
        "parameter 'p3' is declared but no node uses it", "parameter 'p4' is declared but no node uses it"]
    shared = chain(["a", "b"], [[0], [0]], [0, 1])
    assert [d.message for d in V._unused_params(shared)] == ["parameter 'p1' is declared but no node uses it"]
    assert V._unused_params(chain(["a"], [[1, 0]], [0, 1])) == []


@given(st.lists(st.lists(st.sampled_from(["body", "0", "1", "fc", "training", "eval", "", "blocks", "norm"]),
                         min_size=1, max_size=4), min_size=1, max_size=6),
       st.sampled_from(["weight", "training", "", "bias"]))
def test_names_below_a_known_good_parent_match_a_full_check(paths: list[list[str]], local: str) -> None:
    """The same diagnostics as checking every component of every path (the verifier's first version)."""
    modules = [".".join(p) for p in paths]
    nodes, table, value = [], {}, "x"
    for i, module in enumerate(modules):
        full = f"{module}.{local}" if local else module
        table[full] = Param(name=full, shape=(4,), init="ones")
        nodes.append(Node(name=f"v{i}", op=LayerNorm(), inputs=(value,), outputs=(f"v{i}",), types=(T4,),
                          params={"weight": full}, module=module))
        value = f"v{i}"
    g = Graph(name="g", inputs={"x": T4}, nodes=tuple(nodes), outputs={"out": value}, params=table)
    assert [d.message for d in V._names(g)] == full_check(g)


def full_check(graph: Graph) -> list[str]:
    """Every component of every module and parameter path, as the verifier did before it knew good parents."""
    found: list[str] = []
    seen: set[str] = set()
    for node in graph.nodes:
        paths = [node.module] if node.module is not None and node.params else []
        paths += [graph.params[k].name for k in node.params.values() if k in graph.params]
        for path in paths:
            parts = path.split(".")
            bad = next((p for p in parts if V.reserved_component(p) is not None), None)
            if bad is None:
                continue
            where = ".".join(parts[:parts.index(bad) + 1])
            if where not in seen:
                seen.add(where)
                found.append(f"module path {path!r} of {V._what(node)} has an empty component" if bad == "" else
                             f"layer name '{bad}' (in '{where}') clashes with an attribute of torch.nn.Module")
            break
    return found


def test_rule_memo_is_bounded_and_exact(monkeypatch) -> None:
    """Past RULE_MEMO distinct (op, input types) the memo starts again: the findings do not change."""
    monkeypatch.setattr(V, "RULE_MEMO", 3)
    nodes, table, value, width = [], {}, "x", 4
    for i in range(12):
        out = 4 + i % 5
        ty = TensorType(shape=(N, out))
        nodes.append(Node(name=f"v{i}", op=Linear(out_features=out), inputs=(value,), outputs=(f"v{i}",), types=(ty,),
                          params={"weight": f"l{i}.weight", "bias": f"l{i}.bias"}, module=f"l{i}"))
        table[f"l{i}.weight"] = Param(name=f"l{i}.weight", shape=(out, width if i != 7 else 99))
        table[f"l{i}.bias"] = Param(name=f"l{i}.bias", shape=(out,))
        value, width = f"v{i}", out
    g = Graph(name="g", inputs={"x": T4}, nodes=tuple(nodes), outputs={"out": value}, params=table)
    small = [d.message for d in V.diagnostics(g)]
    monkeypatch.setattr(V, "RULE_MEMO", 4096)
    assert small == [d.message for d in V.diagnostics(g)]
    assert [m for m in small if "declared [" in m] == [
        "parameter 'l7.weight' is declared [6, 99] but linear node 'v7' needs [6, 5]"]
