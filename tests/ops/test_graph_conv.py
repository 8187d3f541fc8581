"""graph_conv: S^hops X W^T + b against torch, with a dense and a sparse adjacency; shape errors."""

from __future__ import annotations

import pytest
import torch

import archdsl

SPEC = "model G() {{\n  in s: [V, V]\n  in x: [V, 6]\n  g = GraphConv(4, hops={hops}, bias={bias})\n  out g(s, x)\n}}\n"


def _adjacency(v: int) -> torch.Tensor:
    """D^-1/2 (A + I) D^-1/2 of a random undirected graph (Kipf & Welling's renormalisation)."""
    a = (torch.rand(v, v, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    a = ((a + a.T) > 0).double() + torch.eye(v, dtype=torch.float64)
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


@pytest.mark.parametrize("hops", [1, 3])
@pytest.mark.parametrize("bias", ["true", "false"])
def test_graph_conv_equals_its_definition(hops: int, bias: str) -> None:
    model = archdsl.build(SPEC.format(hops=hops, bias=bias)).double()
    s, x = _adjacency(9), torch.randn(9, 6, dtype=torch.float64)
    ref = torch.linalg.matrix_power(s, hops) @ x @ model.g.weight.T
    ref = ref + model.g.bias if bias == "true" else ref
    assert torch.allclose(model(s, x), ref, atol=1e-12)
    assert torch.allclose(model(s.to_sparse(), x), ref, atol=1e-12)          # a sparse COO adjacency
    assert archdsl.compile(SPEC.format(hops=hops, bias=bias)).num_params() == 4 * 6 + (4 if bias == "true" else 0)


@pytest.mark.parametrize("inputs,message", [
    ("in s: [V, W]\n  in x: [V, 6]", "an adjacency \\[V, V\\] and node features \\[V, F\\]"),
    ("in s: [V, V]\n  in x: [U, 6]", "over the same nodes"),
])
def test_graph_conv_shape_errors(inputs: str, message: str) -> None:
    with pytest.raises(archdsl.ArchError, match=message):
        archdsl.compile(f"model G() {{\n  {inputs}\n  g = GraphConv(4)\n  out g(s, x)\n}}\n")
