"""collapse-linear through channel concats, channel slices and flattens: random regions collapse exactly (float64,
relative error <= 1e-10 over whole outputs, border pixels included); regions that must not collapse stay."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.passes.collapse_linear import CollapseLinear
from archdsl.testing.strategies import SpecCase
from tests.passes.helpers import assert_same_function, ops_of

FORCED = [CollapseLinear(force=True), "dce"]


@st.composite
def _conv(draw, out: int, channels: int, padded: bool, stride: int | None = None) -> str:
    k = draw(st.integers(1, 5))
    s = draw(st.integers(1, 2)) if stride is None else stride
    d = draw(st.integers(1, 2))
    g = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0 and out % g == 0]))
    p = draw(st.integers(0, (k - 1) * d)) if padded else 0
    return f"Conv2d({out}, {k}, stride={s}, padding={p}, dilation={d}, groups={g}, bias={draw(st.booleans())})".lower(
    ).replace("conv2d", "Conv2d")


@st.composite
def regions(draw) -> SpecCase:
    """conv -> (concat of two branches | channel slice | split -> branches -> concat | flatten -> Linear) -> conv
    or Linear, biases random."""
    c = draw(st.sampled_from((2, 3, 4)))
    kind = draw(st.sampled_from(("concat", "slice", "split", "shuffle", "flatten")))
    lines = []
    if kind == "concat":                 # branches with one stride and one output grid, anchors centred or shifted
        s = draw(st.integers(1, 2))
        aligned = draw(st.booleans())
        k1, k2 = (draw(st.sampled_from((1, 3, 5))) for _ in range(2))
        b1 = f"Conv2d({draw(st.integers(1, 4))}, {k1}, stride={s}, padding={k1 // 2}, bias={str(draw(st.booleans())).lower()})"
        pads = k2 // 2 if aligned else ((k2 - 1, 0), (0, k2 - 1))
        b2 = f"Conv2d({draw(st.integers(1, 4))}, {k2}, stride={s}, padding={pads}, " \
             f"bias={str(draw(st.booleans())).lower()})"
        tail = draw(_conv(draw(st.integers(1, 5)), 1, False))
        lines += [f"  a = {b1}", f"  b = {b2}", f"  c = {tail}", "  out concat([a(x), b(x)], 1) |> c"]
        return SpecCase(_model(c, "H, W", lines), ({"N": 2, "H": 23, "W": 21}, {"N": 1, "H": 20, "W": 25}))
    mid = draw(st.integers(2, 8))
    head = draw(_conv(mid, c, True))
    if kind == "split":                  # pieces through 1x1 convs or as they are, concatenated in any order
        first = draw(st.integers(1, mid - 1))
        b0 = f"Conv2d({draw(st.integers(1, 4))}, 1, bias={str(draw(st.booleans())).lower()})"
        tail = draw(_conv(draw(st.integers(1, 5)), 1, False))
        pieces = ["a(p)", "q" if draw(st.booleans()) else "b(q)"]
        order = pieces if draw(st.booleans()) else pieces[::-1]
        lines += [f"  h = {head}", f"  a = {b0}", f"  b = Conv2d({draw(st.integers(1, 3))}, 1)", f"  c = {tail}",
                  f"  p, q = x |> h |> split(({first}, {mid - first}), 1)",
                  f"  out concat([{', '.join(order)}], 1) |> c"]
        if "b(q)" not in order:
            lines.remove(next(line for line in lines if line.startswith("  b = ")))
        return SpecCase(_model(c, "H, W", lines), ({"N": 2, "H": 23, "W": 21}, {"N": 1, "H": 20, "W": 25}))
    if kind == "shuffle":                # 1x1 maps after a pixel shuffle move before it: conv, then the shuffle
        r = draw(st.integers(2, 3))
        head = draw(_conv(draw(st.integers(1, 2)) * r * r, c, True, stride=1))
        lines += [f"  a = {head}", "  bn = BatchNorm2d()", f"  b = Conv2d({draw(st.integers(1, 4))}, 1)",
                  f"  out x |> a |> pixel_shuffle({r}) |> bn |> b"]
        return SpecCase(_model(c, "H, W", lines), ({"N": 2, "H": 11, "W": 10}, {"N": 1, "H": 10, "W": 13}))
    if kind == "slice":
        start = draw(st.integers(0, mid - 1))
        step = draw(st.integers(1, 2))
        n = len(range(start, mid, step))
        tail = draw(_conv(draw(st.integers(1, 5)), 1 if n % 2 else n, False))
        lines += [f"  a = {head}", f"  c = {tail}", f"  out x |> a |> slice(1, {start}, {mid}, {step}) |> c"]
        return SpecCase(_model(c, "H, W", lines), ({"N": 2, "H": 23, "W": 21}, {"N": 1, "H": 20, "W": 25}))
    lines += [f"  a = {head}", f"  f = Linear({draw(st.integers(1, 6))}, bias={str(draw(st.booleans())).lower()})",
              "  out x |> a |> flatten |> f"]
    return SpecCase(_model(c, "11, 10", lines), ({"N": 3},))    # 10 >= the widest kernel's reach (5 - 1) * 2 + 1


def _model(c: int, size: str, lines: list[str]) -> str:
    return "\n".join(["model Region() {", f"  in x: [N, {c}, {size}]", *lines, "}"]) + "\n"


@settings(max_examples=30, deadline=None)
@given(regions())
def test_regions_through_concat_slice_and_flatten_collapse_exactly(case: SpecCase) -> None:
    result = assert_same_function(case, FORCED)                    # float64, relative error <= 1e-10
    ops = ops_of(result.graph)
    if "flatten" in case.text:
        assert ops == ["flatten", "linear"], case.text             # conv -> flatten -> Linear is one Linear
    elif "pixel_shuffle" in case.text:
        assert ops == ["conv2d", "pixel_shuffle"], case.text
    else:
        assert ops == ["conv2d"], case.text


def _spec(c: int, size: str, *lines: str) -> str:
    return _model(c, size, list(lines))


def test_conv_flatten_linear_is_one_linear_where_cheaper() -> None:
    """A 1x1 expansion before a classifier head: Linear(C*H*W) is cheaper than the conv plus Linear(8C*H*W)."""
    text = _spec(4, "6, 6", "  a = Conv2d(32, 1)", "  f = Linear(10)", "  out x |> a |> flatten |> f")
    graph = archdsl.compile(text).replace(mode="eval")
    (decision,) = CollapseLinear().decisions(graph)
    assert [s["action"] for s in decision.segments()] == ["collapsed"]
    result = assert_same_function(SpecCase(text, ({"N": 2},)), "collapse-linear,dce")
    assert ops_of(result.graph) == ["flatten", "linear"] and result.graph.num_params() == 4 * 36 * 10 + 10


def test_conv_flatten_linear_stays_when_the_conv_shrinks_the_features() -> None:
    """A strided conv that shrinks C*H*W 16-fold before a wide Linear: collapsing would add MACs, so it stays."""
    text = _spec(16, "16, 16", "  a = Conv2d(4, 2, stride=2)", "  f = Linear(64)", "  out x |> a |> flatten |> f")
    graph = archdsl.compile(text).replace(mode="eval")
    assert not CollapseLinear().apply(graph).changed
    (decision,) = CollapseLinear().decisions(graph)
    assert [s["action"] for s in decision.segments()] == ["kept", "kept", "kept"]


@pytest.mark.parametrize("body", [
    # a nonlinearity on one branch of the concat
    ("  a = Conv2d(4, 3, padding=1)", "  b = Conv2d(4, 1)", "  c = Conv2d(4, 1)",
     "  out concat([relu(a(x)), b(x)], 1) |> c"),
    # branches reading different tensors
    ("  a = Conv2d(4, 3, padding=1)", "  b = Conv2d(4, 1)", "  c = Conv2d(4, 1)",
     "  out concat([a(x), b(relu(x))], 1) |> c"),
    # a piece of the split is read outside the concat too
    ("  a = Conv2d(4, 3, padding=1)", "  b = Conv2d(2, 1)", "  c = Conv2d(4, 1)", "  p, q = x |> a |> split((2, 2), 1)",
     "  y = concat([b(p), q], 1) |> c", "  out concat([y, relu(q)], 1)"),
    # a 3x3 conv after a pixel shuffle reads neighbouring phases: it does not move before the shuffle
    ("  a = Conv2d(16, 3, padding=1)", "  c = Conv2d(4, 3, padding=1)", "  out x |> a |> pixel_shuffle(2) |> c"),
    # a spatial slice is no channel gather
    ("  a = Conv2d(4, 3, padding=1)", "  c = Conv2d(4, 1)", "  out x |> a |> slice(2, 1, 5) |> c"),
])
def test_regions_that_must_not_collapse_are_left_alone(body: tuple[str, ...]) -> None:
    case = SpecCase(_spec(4, "8, 8", *body), ({"N": 2},))
    result = assert_same_function(case, FORCED)
    assert ops_of(result.graph).count("conv2d") >= 2 and not [c for c in result.result.changes
                                                               if c.pass_name == "collapse-linear" and
                                                               "a" in c.merged and "c" in c.merged]


def test_report_lists_collapsed_and_kept_segments_with_their_costs() -> None:
    """The simplify report (text and JSON) says which segments collapsed, which were kept, and what each costs."""
    import json

    text = _spec(16, "H, W", "  e = Conv2d(256, 3, padding=1, bias=false)", "  s = Conv2d(16, 1, bias=false)",
                 "  b1 = Conv2d(4, 1)", "  b2 = Conv2d(16, 1)", "  out x |> e |> s |> relu |> b1 |> b2")
    report = archdsl.simplify(text).report
    rendered = report.text()
    assert "cost-model decisions" in rendered
    assert "collapse-linear: chain e -> s: cost " in rendered and "  collapsed e + s -> 3x3 groups 1: cost " in rendered
    assert "chain b1 -> b2:" in rendered and "  kept b1: cost " in rendered and "  kept b2: cost " in rendered
    data = json.loads(report.to_json())["decisions"]
    assert [(d["chain"], [s["action"] for s in d["segments"]]) for d in data] == [
        (["e", "s"], ["collapsed"]), (["b1", "b2"], ["kept", "kept"])]
    kept = data[1]
    assert kept["planned_cost"] == kept["kept_cost"] == sum(s["cost"] for s in kept["segments"])
    assert data[0]["planned_cost"] < data[0]["kept_cost"]
    assert kept["forced_cost"] > kept["kept_cost"] and "with every exact collapse" in rendered


def test_a_kept_fan_still_collapses_the_chains_inside_its_branches() -> None:
    """A concat whose merged kernel would be a dense 7x7 stays as its ops; its 1x1 -> 1x1 branch still collapses."""
    text = _spec(64, "H, W", "  a = Conv2d(16, 1)", "  b = Conv2d(16, 1)", "  d = Conv2d(16, 7, padding=3, groups=16)",
                 "  out concat([b(a(x)), d(x)], 1)")
    graph = archdsl.compile(text).replace(mode="eval")
    fan, inner = CollapseLinear().decisions(graph)
    assert [s["action"] for s in fan.segments()] == ["kept"] and inner.names == ("a", "b")
    assert [s["action"] for s in inner.segments()] == ["collapsed"]
    result = assert_same_function(SpecCase(text, ({"N": 1, "H": 9, "W": 8},)), "collapse-linear,dce")
    assert ops_of(result.graph) == ["conv2d", "conv2d", "concat"]
    assert [c.merged for c in result.result.changes] == [("a", "b")]
