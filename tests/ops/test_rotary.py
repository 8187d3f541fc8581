"""The rotary embedding (RoPE): values against a complex-number reference, relative-position invariance,
partial and interleaved forms, decoding that continues the positions, and located shape errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl.backends.torch.functional import rotary
from archdsl.errors import ArchError


def complex_reference(x: torch.Tensor, offset: int, base: float, interleaved: bool, d: int) -> torch.Tensor:
    """RoPE as a product of complex numbers: pair (a, b) -> (a + ib) e^{i t theta_j}, theta_j = base^(-2j/d)."""
    rot, rest = x[..., :d], x[..., d:]
    a, b = (rot[..., 0::2], rot[..., 1::2]) if interleaved else rot.chunk(2, -1)
    theta = torch.tensor([base ** (-2 * j / d) for j in range(d // 2)], dtype=torch.float64)
    t = torch.arange(offset, offset + x.shape[1], dtype=torch.float64)
    turn = torch.polar(torch.ones(len(t), d // 2, dtype=torch.float64), t[:, None] * theta)[None, :, None, :]
    z = torch.complex(a, b) * turn
    parts = (torch.stack((z.real, z.imag), -1).flatten(-2) if interleaved else torch.cat((z.real, z.imag), -1))
    return torch.cat((parts, rest), -1)


def model(body: str, head: int = 8) -> torch.nn.Module:
    graph = archdsl.compile(f"model M() {{\n  in x: [B, T, 2, {head}]\n  out x |> {body}\n}}\n")
    return archdsl.build(graph).double()


@given(t=st.integers(1, 9), offset=st.integers(0, 300), interleaved=st.booleans(),
       d=st.sampled_from([2, 4, 8]), base=st.sampled_from([10000.0, 500.0, 2.5]))
def test_equals_the_complex_reference(t, offset, interleaved, d, base):
    x = torch.randn(2, t, 3, 8, dtype=torch.float64)
    out = rotary(x, offset, base, interleaved, d)
    assert torch.allclose(out, complex_reference(x, offset, base, interleaved, d), rtol=0, atol=1e-12)
    assert torch.equal(out[..., d:], x[..., d:])                                   # channels past d pass
    pairs = (lambda y: y[..., :d].reshape(*y.shape[:3], -1, 2)) if interleaved else \
        (lambda y: torch.stack(y[..., :d].chunk(2, -1), -1))
    assert torch.allclose(pairs(out).norm(dim=-1), pairs(x).norm(dim=-1), atol=1e-12)   # a rotation


def test_float32_within_tolerance_of_float64():
    x = torch.randn(1, 300, 2, 16, dtype=torch.float64)
    exact = rotary(x, 0, 10000.0, False, None)
    assert (rotary(x.float(), 0, 10000.0, False, None).double() - exact).abs().max() < 1e-4   # angles up to 299 rad


def test_scores_depend_only_on_the_distance():
    """<R_t q, R_s k> = <R_{t+c} q, R_{s+c} k>: shifting every position leaves attention scores unchanged."""
    q, k = torch.randn(2, 1, 6, 2, 8, dtype=torch.float64).unbind(0)
    scores = torch.einsum("bthd,bshd->bhts", rotary(q, 0, 100.0, False, None), rotary(k, 0, 100.0, False, None))
    shifted = torch.einsum("bthd,bshd->bhts", rotary(q, 37, 100.0, False, None), rotary(k, 37, 100.0, False, None))
    assert torch.allclose(scores, shifted, atol=1e-12)
    plain = torch.einsum("bthd,bshd->bhts", q, k)
    assert not torch.allclose(scores, plain)


@pytest.mark.parametrize("body", ["rotary()", "rotary(interleaved=true, rotary_dim=4)", "rotary(base=500.0)"])
def test_generated_module_matches_and_step_continues_positions(body):
    m = model(body)
    x = torch.randn(2, 7, 2, 8, dtype=torch.float64)
    full = m(x)
    attrs = dict(interleaved="interleaved=true" in body, d=4 if "rotary_dim=4" in body else 8,
                 base=500.0 if "500" in body else 10000.0)
    assert torch.allclose(full, complex_reference(x, 0, attrs["base"], attrs["interleaved"], attrs["d"]), atol=1e-12)
    first, state = m.step(x[:, :3])
    pieces = [first]
    for i in range(3, 7):
        y, state = m.step(x[:, i:i + 1], state)
        pieces.append(y)
    assert torch.allclose(torch.cat(pieces, 1), full, atol=1e-12)
    assert torch.equal(m(x), full)                       # a step leaves no state behind in the module


@pytest.mark.parametrize(("shape", "attrs", "message"), [
    ("[B, T, 8]", "", "rank"),
    ("[B, T, 2, 8]", "rotary_dim=3", "rotary_dim must be even"),
    ("[B, T, 2, 8]", "rotary_dim=10", "at most the head width 8"),
    ("[B, T, 2, D]", "", "head width (axis 3) must be a number"),
    ("int64[B, T, 2, 8]", "", "floating-point"),
    ("[B, T, 2, 8]", "base=1.0", "base must be a finite number above 1"),
])
def test_bad_uses_are_located_errors(shape, attrs, message):
    text = f"model M() {{\n  in x: {shape}\n  out x |> rotary({attrs})\n}}\n"
    with pytest.raises(ArchError) as info:
        archdsl.compile(text)
    rendered = info.value.render()
    assert message in rendered and ":3:" in rendered


def test_cost_counts_two_products_per_rotated_element():
    graph = archdsl.compile("model M() {\n  in x: [2, 5, 3, 8]\n  out x |> rotary(rotary_dim=4)\n}\n")
    node = graph.nodes[0]
    types = graph.value_types()
    assert node.op.cost([types[v] for v in node.inputs], list(node.types)).macs == 2 * 5 * 3 * 4 * 2


@pytest.mark.reference
@pytest.mark.parametrize("interleaved", [False, True])
def test_equals_fla_rotary_reference(interleaved):
    ops = pytest.importorskip("fla.modules.rotary.ops")
    x = torch.randn(2, 11, 3, 16)
    d = 12
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, d, 2, dtype=torch.float32) / d))     # fla's RotaryEmbedding
    angles = torch.outer(torch.arange(4, 15, dtype=torch.float32), inv_freq)
    expected = ops.rotary_embedding_ref(x, angles.cos(), angles.sin(), interleaved=interleaved)
    assert torch.allclose(rotary(x, 4, 10000.0, interleaved, d), expected, atol=1e-6)
