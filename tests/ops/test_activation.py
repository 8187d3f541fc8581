"""Activations: torch reference outputs (float64), shape rules on symbolic dims, traits checked numerically."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl.ir.dims import SymDim
from archdsl.ir.types import TensorType
from archdsl.ops import activation as A
from archdsl.ops.base import Trait

# (spec expression on x, reference)
CASES = [
    ("relu(x)", F.relu),
    ("x |> relu6", F.relu6),
    ("leaky_relu(x, 0.2)", lambda x: F.leaky_relu(x, 0.2)),
    ("LeakyReLU()(x)", lambda x: F.leaky_relu(x, 0.01)),
    ("elu(x, alpha=0.5)", lambda x: F.elu(x, 0.5)),
    ("gelu(x)", F.gelu),
    ('gelu(x, approximate="tanh")', lambda x: F.gelu(x, approximate="tanh")),
    ("silu(x)", F.silu),
    ("mish(x)", F.mish),
    ("sigmoid(x)", torch.sigmoid),
    ("hardsigmoid(x)", F.hardsigmoid),
    ("hardswish(x)", F.hardswish),
    ("tanh(x)", torch.tanh),
    ("softplus(x, beta=2.0, threshold=1.0)", lambda x: F.softplus(x, beta=2.0, threshold=1.0)),
    ("logsigmoid(x)", F.logsigmoid),
    ("softmax(x, dim=1)", lambda x: torch.softmax(x, 1)),
    ("log_softmax(x, -1)", lambda x: torch.log_softmax(x, -1)),
]


def build(body: str, in_type: str = "[N, 3, L]") -> torch.nn.Module:
    """Build a one-input model from a body of statements, in float64 and eval mode."""
    return archdsl.build(f"model M() {{\n in x: {in_type}\n {body}\n}}").double().eval()


@pytest.mark.parametrize(("expr", "ref"), CASES, ids=[c[0] for c in CASES])
def test_matches_torch(expr, ref):
    x = torch.randn(2, 3, 7, dtype=torch.float64) * 4
    torch.testing.assert_close(build(f"out {expr}")(x), ref(x))


def test_prelu_is_nn_prelu():
    module = build("act = PReLU(3)\n shared = PReLU()\n out x |> act |> shared")
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {"act.weight": (3,), "shared.weight": (1,)}
    assert torch.all(module.act.weight == 0.25)
    ref = torch.nn.PReLU(3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor([0.1, -0.5, 2.0]))
        module.act.weight.copy_(ref.weight)
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    torch.testing.assert_close(module(x), F.prelu(ref(x), torch.tensor([0.25], dtype=torch.float64)))


HOMOGENEOUS = [op for op in A.OPS if op.traits >= {Trait.HOMOGENEOUS}]
ODD = [op for op in A.OPS if Trait.ODD in op.traits]


def test_declared_traits():
    assert {op.name for op in HOMOGENEOUS} == {"relu", "leaky_relu", "prelu"}
    assert {op.name for op in ODD} == {"tanh"}
    not_elementwise = {op.name for op in A.OPS if Trait.ELEMENTWISE not in op.traits}
    assert not_elementwise == {"softmax", "log_softmax"}


@pytest.mark.parametrize("op", HOMOGENEOUS + ODD, ids=lambda op: op.name)
def test_traits_hold_numerically(op):
    """f(a x) = a f(x) for a > 0 where declared homogeneous; f(-x) = -f(x) where declared odd."""
    layer = "act = PReLU(3)\n out x |> act" if op is A.PReLU else f"out {op.name}(x)"
    f = build(layer)
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    if Trait.HOMOGENEOUS in op.traits:
        torch.testing.assert_close(f(3.5 * x), 3.5 * f(x))
    if Trait.ODD in op.traits:
        torch.testing.assert_close(f(-x), -f(x))


dims = st.lists(st.one_of(st.integers(1, 6), st.sampled_from(["N", "T", "H"])), min_size=1, max_size=4)


@given(dims, st.sampled_from([op for op in A.OPS if op is not A.PReLU]), st.data())
def test_shape_rule_is_identity(shape, op, data):
    t = TensorType(shape=tuple(SymDim.symbol(d) if isinstance(d, str) else d for d in shape))
    if issubclass(op, A.Softmax):
        inst = op(dim=data.draw(st.integers(-t.rank, t.rank - 1)))
    else:
        inst = op()
    assert inst.infer([t]) == [t]


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data())
def test_softmax_shape_matches_torch(shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    out = A.Softmax(dim=dim).infer([TensorType(shape=tuple(shape))])[0]
    assert tuple(out.shape) == tuple(torch.softmax(torch.zeros(shape), dim).shape)


@pytest.mark.parametrize(("body", "message"), [
    ("out softmax(x)", "needs the argument 'dim'"),
    ("out softmax(x, dim=3)", "axis 3 is out of range for rank 3"),
    ('out gelu(x, approximate="fast")', "bad value for 'approximate'"),
    ("act = PReLU(4)\n out x |> act", "needs that many channels on axis 1"),
    ("out x |> PReLU()", "needs a name"),
    ("out leaky_relu(x, slope=0.1)", "LeakyReLU takes: negative_slope"),
    ("out softplus(x, beta=0)", "must not be zero"),
])
def test_errors(body, message):
    with pytest.raises(archdsl.ArchError, match=message):
        archdsl.compile(f"model M() {{\n in x: [N, 3, L]\n {body}\n}}")


def test_integer_input_is_refused():
    with pytest.raises(archdsl.ShapeError, match=r"ReLU: expects a floating-point tensor, got int64\[N, 3\]"):
        archdsl.compile("model M() {\n in x: int64[N, 3]\n out relu(x)\n}")
