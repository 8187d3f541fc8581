"""collapse-linear: chains of affine ops become one op computing exactly the same function; the cost model
collapses expansions and keeps factorisations; regions that cannot collapse exactly are left alone."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

import archdsl
from archdsl.errors import UsageError
from archdsl.passes.collapse_linear import CollapseLinear
from archdsl.passes.convmap import regroup
from archdsl.testing import check_equivalent
from archdsl.testing.strategies import SpecCase, linear_chains
from tests.passes.helpers import assert_same_function, built, ops_of

FORCED = [CollapseLinear(force=True), "dce"]
WEIGHTED = ("conv1d", "conv2d", "conv3d", "linear", "avg_pool1d", "avg_pool2d")


def _weighted(graph: archdsl.Graph) -> int:
    return sum(op in WEIGHTED for op in ops_of(graph))


@given(linear_chains())
def test_collapsed_chain_is_the_same_function_float64(case: SpecCase) -> None:
    result = assert_same_function(case, FORCED)                    # relative error <= 1e-10
    if "exact" in case.notes and _weighted(result.source) and result.source.params:
        assert len(result.graph.nodes) == 1, (case.text, ops_of(result.graph))


@settings(max_examples=10)
@given(linear_chains())
def test_collapsed_chain_is_the_same_function_float32(case: SpecCase) -> None:
    assert_same_function(case, FORCED, dtype=torch.float32)        # relative error <= 1e-5


def _probe(model: torch.nn.Module, c: int, out: int, kernel: tuple[int, int], stride: tuple[int, int],
           pads: tuple[int, int]) -> torch.Tensor:
    """The kernel [out, c, kh, kw] as the training form reveals it: y(delta) - y(0) at interior positions,
    one delta per input channel and stride phase."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pads
    h, w = 2 * (kh + ph + 2 * sh) + 1, 2 * (kw + pw + 2 * sw) + 1
    zero = model(torch.zeros(1, c, h, w, dtype=torch.float64))
    found = torch.zeros(out, c, kh, kw, dtype=torch.float64)
    for rh in range(sh):
        for rw in range(sw):
            x = torch.zeros(c, c, h, w, dtype=torch.float64)
            at = (h // 2 + rh, w // 2 + rw)
            x[range(c), range(c), at[0], at[1]] = 1.0
            response = model(x) - zero                             # [c, out, ho, wo]
            for u in range(kh):
                for v in range(kw):
                    a, b = at[0] + ph - u, at[1] + pw - v
                    if a % sh == 0 and b % sw == 0:
                        found[:, :, u, v] = response[:, :, a // sh, b // sw].T
    return found


@settings(max_examples=8)
@given(linear_chains(exact=True, spatial=2))
def test_delta_probes_reveal_the_collapsed_kernel(case: SpecCase) -> None:
    """A second oracle: the training form's response to deltas is the analytic kernel (biases on, any stride)."""
    graph = archdsl.compile(case.text)
    model = built(graph, torch.float64)
    result = archdsl.simplify(graph, weights=model, passes=FORCED)
    convs = [m for m in result.module().modules() if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != 1:
        return                                                     # only per-channel ops: nothing collapsed
    conv = convs[0]
    pads = tuple(before for before, _ in result.graph.nodes[0].op.pads())
    kernel = regroup(conv.weight.detach(), conv.groups, 1)
    with torch.no_grad():
        found = _probe(model, conv.in_channels, conv.out_channels, tuple(kernel.shape[2:]), conv.stride, pads)
    assert torch.allclose(found, kernel, rtol=1e-9, atol=1e-9), case.text


def _spec(body: str, c: int = 4, size: str = "H, W") -> str:
    return f"model M() {{\n  in x: [N, {c}, {size}]\n  {body}\n}}\n"


@pytest.mark.parametrize("body", [
    # a padded intermediate after a map with a bias: the border pixels would differ
    "out x |> seq{a: Conv2d(4, 3, padding=1), b: Conv2d(4, 3, padding=1)}",
    # reflect padding of a 3x3 conv's output cannot move to the input
    "out x |> seq{a: Conv2d(4, 3, bias=false), b: Conv2d(4, 3, padding=1, padding_mode=\"reflect\")}",
    # a nonlinearity between the convolutions
    "out x |> seq{a: Conv2d(8, 3, padding=1), b: relu, c: Conv2d(4, 1)}",
])
def test_regions_that_cannot_collapse_exactly_are_left_alone(body: str) -> None:
    case = SpecCase(_spec(body))
    result = assert_same_function(case, FORCED)
    assert sum(op == "conv2d" for op in ops_of(result.graph)) == 2
    assert not result.result.changes


# (spec, collapsed MACs / kept MACs), the table
TABLE = {
    "expansion": ("out x |> seq{a: Conv2d(256, 3, padding=1, bias=false), b: Conv2d(16, 1, bias=false)}", 16,
                  0.05625),
    "bottleneck": ("out x |> seq{a: Conv2d(64, 1), b: Conv2d(256, 1)}", 256, 2.0),
    "two 3x3": ("out x |> seq{a: Conv2d(32, 3), b: Conv2d(32, 3)}", 32, 25 / 18),
    "depthwise + pointwise": ("out x |> seq{a: Conv2d(128, 3, padding=1, groups=128), b: Conv2d(128, 1)}", 128,
                              9 * 128 / (9 + 128)),
    "1x7 + 7x1": ("out x |> seq{a: Conv2d(32, (1, 7)), b: Conv2d(32, (7, 1))}", 32, 3.5),
}


@pytest.mark.parametrize("name", list(TABLE))
def test_cost_model_collapses_expansions_and_keeps_factorisations(name: str) -> None:
    body, c, ratio = TABLE[name]
    graph = archdsl.compile(_spec(body, c)).replace(mode="eval")
    (decision,) = CollapseLinear(force=True, backend="macs", probe=4096).decisions(graph)
    assert decision.plan.cost / decision.plan.kept_cost == pytest.approx(ratio, rel=0.01)
    for backend in ("macs", "cpu", "cuda"):
        default = CollapseLinear(backend=backend).apply(graph)
        assert default.changed == (ratio < 1), (name, backend)
    forced = CollapseLinear(force=True).apply(graph)
    assert forced.changed and [n.op.name for n in forced.graph.nodes] == ["conv2d"]
    assert f"chain {' -> '.join(decision.names)}" in decision.describe()


def test_collapse_reports_the_choice() -> None:
    graph = archdsl.compile(_spec(TABLE["expansion"][0], 16)).replace(mode="eval")
    (change,) = CollapseLinear().apply(graph).report
    assert change.merged == ("a", "b") and "2 ops -> 3x3 groups 1; cost" in change.describe()


def test_pads_move_into_the_collapsed_convolution() -> None:
    """pad -> conv -> BatchNorm -> 1x1 conv (biases on) is one padded conv; stacked zero pads add up."""
    body = ("out x |> seq{p: pad((1, 2, 0, 1)), a: Conv2d(6, 3, padding=1, bias=false), bn: BatchNorm2d(), "
            "b: Conv2d(5, 1)}")
    result = assert_same_function(SpecCase(_spec(body, 3)), FORCED)
    (node,) = result.graph.nodes
    assert node.op.padding == ((1, 2), (2, 3)) and node.op.bias


def test_linear_chains_become_one_matmul() -> None:
    body = "out x |> seq{a: Linear(64), bn: BatchNorm1d(), b: Linear(3)}"
    result = assert_same_function(SpecCase(f"model M() {{\n  in x: [N, 8]\n  {body}\n}}\n", ({"N": 3},)))
    assert ops_of(result.graph) == ["linear"]


def test_unknown_backend_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown cost-model backend 'tpu'"):
        CollapseLinear(backend="tpu")


# model: (collapsed convolution weights in the paper, m)
SESR = {"sesr_m5_x2": (13_520, 5), "sesr_m5_x4": (18_320, 5), "sesr_m11_x2": (27_344, 11),
        "sesr_m11_x4": (32_144, 11), "sesr_xl_x2": (105_376, 11), "sesr_xl_x4": (114_976, 11)}


def _conv_weights(graph: archdsl.Graph) -> int:
    return sum(p.numel() for n in graph.nodes if n.op.name == "conv2d" for k, full in n.params.items()
               for p in [graph.params[full]] if k == "weight")


@pytest.mark.parametrize("model", list(SESR))
def test_sesr_collapses_to_the_papers_counts(model: str) -> None:
    result = archdsl.simplify(model)                               # the default deploy pipeline
    weights, m = SESR[model]
    assert _conv_weights(result.graph) == weights
    assert sum(op == "conv2d" for op in ops_of(result.graph)) == m + 2


def test_sesr_collapsed_outputs_equal_the_expanded_form() -> None:
    graph = archdsl.compile("sesr_m5_x2")
    model = built(graph, torch.float64)
    result = archdsl.simplify(graph, weights=model)
    bad = check_equivalent(model, result.module(), graph, ({"N": 1, "H": 9, "W": 10}, {"N": 2, "H": 6, "W": 5}))
    assert not bad, bad[0]
    assert _conv_weights(result.graph) == 13_520


GRAPH = ("model G() {{\n  in adj: [V, V]\n  in x: [V, 6]\n  g1 = GraphConv(5, bias={inner})\n"
         "  g2 = GraphConv(4, hops=2, bias=false)\n  g3 = GraphConv(3)\n  out g3(adj, g2(adj, g1(adj, x)))\n}}\n")


def test_linear_graph_convolutions_collapse_into_one_propagation() -> None:
    """SGC: K graph convolutions without nonlinearities are S^K X (W_K ... W_1), exactly (any S: dense here)."""
    result = assert_same_function(SpecCase(GRAPH.format(inner="false"), ({"V": 7}, {"V": 4})))
    (node,) = result.graph.nodes
    assert (node.op.hops, node.op.out_features, node.op.bias) == (4, 3, True) and node.module == "g3"
    (change,) = result.result.changes
    assert "S^4 X is precomputable" in change.describe()


def test_a_bias_inside_a_graph_chain_stops_it() -> None:
    """S (X W1 + 1 b1) W2 propagates the bias: g1 stays apart, g2 and g3 still collapse."""
    result = assert_same_function(SpecCase(GRAPH.format(inner="true"), ({"V": 7},)))
    assert [n.op.hops for n in result.graph.nodes] == [1, 3]


def test_sgc_zoo_model_is_the_collapsed_linear_gcn() -> None:
    expanded, sgc = archdsl.compile("sgc_expanded"), archdsl.compile("sgc")
    result = archdsl.simplify(expanded)
    assert result.graph.num_params() == sgc.num_params() == 10_038
    assert [(n.op.name, n.op.hops) for n in result.graph.nodes] == [("graph_conv", 2)]
