"""Hypothesis-generated networks: every derived symmetry keeps the outputs, and each class is tight."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.symmetry import GroupElement, derive
from archdsl.symmetry.check import Harness
from tests.symmetry.helpers import CHANGED, TIGHT

ACTS = ("relu", "tanh", "gelu", "leaky_relu", "sigmoid")


@st.composite
def dense_spec(draw) -> str:
    """A random MLP-like model over [N, 5]: linears, activations, norms, residuals, concat, slices, chunks,
    broadcasts."""
    lines, c, v = [], 5, "x"
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["linear", "act", "ln", "bn", "res", "cat", "slice", "chunkadd", "bcast"]))
        if kind == "linear":
            c = draw(st.integers(2, 7))
            lines += [f"l{i} = Linear({c})", f"v{i} = {v} |> l{i}"]
        elif kind == "act":
            lines.append(f"v{i} = {v} |> {draw(st.sampled_from(ACTS))}")
        elif kind == "ln":
            lines += [f"n{i} = LayerNorm()", f"v{i} = {v} |> n{i}"]
        elif kind == "bn":
            lines += [f"n{i} = BatchNorm1d()", f"v{i} = {v} |> n{i}"]
        elif kind == "res":
            lines += [f"l{i} = Linear({c})", f"v{i} = {v} + ({v} |> {draw(st.sampled_from(ACTS))} |> l{i})"]
        elif kind == "cat":
            k = draw(st.integers(1, 4))
            lines += [f"l{i} = Linear({k})", f"v{i} = concat([{v}, {v} |> l{i} |> relu], dim=1)"]
            c += k
        elif kind == "slice" and c >= 3:
            a = draw(st.integers(0, c - 2))
            b = draw(st.integers(a + 1, c))
            lines.append(f"v{i} = slice({v}, 1, {a}, {b})")
            c = b - a
        elif kind == "bcast":                                   # a one-unit class broadcast over c units
            lines += [f"l{i} = Linear(1)", f"v{i} = {v} + ({v} |> l{i})"]
        elif kind == "chunkadd" and c % 2 == 0:
            lines += [f"p{i}, q{i} = {v} |> chunk(2, 1)", f"v{i} = p{i} + q{i}"]
            c //= 2
        else:
            continue
        v = f"v{i}"
    body = "\n  ".join(lines)
    return f'model net() {{\n  "generated"\n  in x: [N, 5]\n  head = Linear(3)\n  {body}\n  out {v} |> head\n}}\n'


@st.composite
def conv_spec(draw) -> str:
    """A random CNN over [N, 4, 5, 5]: (grouped, depthwise) convs, BN, GroupNorm, residuals, concat."""
    lines, c, v = [], 4, "x"
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "group", "depthwise", "bn", "gn", "act", "res", "cat"]))
        if kind == "conv":
            c = draw(st.integers(2, 6))
            lines += [f"l{i} = Conv2d({c}, {draw(st.sampled_from([1, 3]))}, padding='same')", f"v{i} = {v} |> l{i}"]
        elif kind == "group" and c % 2 == 0:
            c2 = 2 * draw(st.integers(1, 3))
            lines += [f"l{i} = Conv2d({c2}, 3, padding=1, groups=2)", f"v{i} = {v} |> l{i}"]
            c = c2
        elif kind == "depthwise":
            lines += [f"l{i} = Conv2d({c}, 3, padding=1, groups={c})", f"v{i} = {v} |> l{i}"]
        elif kind == "bn":
            lines += [f"n{i} = BatchNorm2d()", f"v{i} = {v} |> n{i}"]
        elif kind == "gn" and c % 2 == 0:
            lines += [f"n{i} = GroupNorm(2)", f"v{i} = {v} |> n{i}"]
        elif kind == "act":
            lines.append(f"v{i} = {v} |> {draw(st.sampled_from(ACTS))}")
        elif kind == "res":
            lines += [f"l{i} = Conv2d({c}, 1)", f"v{i} = {v} + ({v} |> relu |> l{i})"]
        elif kind == "cat":
            k = draw(st.integers(1, 3))
            lines += [f"l{i} = Conv2d({k}, 1)", f"v{i} = concat([{v} |> l{i}, {v}], dim=1)"]
            c += k
        else:
            continue
        v = f"v{i}"
    body = "\n  ".join(lines)
    return (f'model net() {{\n  "generated"\n  in x: [N, 4, 5, 5]\n  head = Linear(3)\n  {body}\n'
            f'  out {v} |> AdaptiveAvgPool2d(1) |> flatten |> head\n}}\n')


def _check(text: str, seed: int) -> None:
    graph = archdsl.compile(text)
    spec = derive(graph)
    h = Harness.build(graph, seed=seed % 7, sizes={"N": 16})     # enough samples that no ReLU is dead
    assert h.error(spec, spec.sample(seed)) < TIGHT, text
    for c in spec.classes:      # tightness: permuting only the creating side, or only the consuming side,
        if c.size > 1 and not c.block:               # changes the outputs (both do, or the units are dead)
            g = GroupElement(perms={spec.leaf_of[c.id]: np.roll(np.arange(c.size), 1)})
            creating = h.error(spec, g, keep=lambda e: e.exponent >= 0) > CHANGED * 1e-3
            consuming = h.error(spec, g, keep=lambda e: e.exponent < 0) > CHANGED * 1e-3
            assert creating == consuming, (text, c.id)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dense_spec(), st.integers(0, 2**16))
def test_random_dense_networks(text: str, seed: int) -> None:
    _check(text, seed)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_spec(), st.integers(0, 2**16))
def test_random_conv_networks(text: str, seed: int) -> None:
    _check(text, seed)
