"""Arithmetic and reductions: torch reference outputs (float64), broadcasting rules, linearity traits."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl.ir.dims import SymDim
from archdsl.ir.types import TensorType
from archdsl.ops import tensor as T
from archdsl.ops.base import Trait


def build(inputs: str, body: str) -> torch.nn.Module:
    """Build a model from input declarations and a body, in float64 and eval mode."""
    return archdsl.build(f"model M() {{\n {inputs}\n {body}\n}}").double().eval()


def rand(*shape: int) -> torch.Tensor:
    """A float64 tensor bounded away from zero (so division is well conditioned)."""
    return torch.rand(*shape, dtype=torch.float64) + 0.5


BINARY = [
    ("x + y", lambda x, y: x + y), ("x - y", lambda x, y: x - y), ("x * y", lambda x, y: x * y),
    ("x / y", lambda x, y: x / y), ("add_n([x, y, y])", lambda x, y: x + y + y),
]


@pytest.mark.parametrize(("expr", "ref"), BINARY, ids=[b[0] for b in BINARY])
def test_binary_broadcasting(expr, ref):
    x, y = rand(2, 3, 4), rand(3, 1)
    assert torch.equal(build("in x: [N, 3, L]\n in y: [3, 1]", f"out {expr}")(x, y), ref(x, y))


SCALAR = [
    ("x + 2", lambda x: x + 2), ("x - 2", lambda x: x - 2), ("2 - x", lambda x: 2 - x), ("x * 3", lambda x: x * 3),
    ("x / 4", lambda x: x / 4), ("1 / x", lambda x: 1 / x), ("x ** 2", lambda x: x ** 2), ("-x", lambda x: -x),
]


@pytest.mark.parametrize(("expr", "ref"), SCALAR, ids=[s[0] for s in SCALAR])
def test_scalar_arithmetic(expr, ref):
    x = rand(2, 5)
    torch.testing.assert_close(build("in x: [N, 5]", f"out {expr}")(x), ref(x))


def test_matmul():
    a, b = rand(2, 3, 4, 5), rand(3, 5, 6)
    out = build("in a: [N, 3, T, 5]\n in b: [3, 5, 6]", "out a @ b")(a, b)
    torch.testing.assert_close(out, a @ b)


@pytest.mark.parametrize(("expr", "ref"), [
    ("mean(x, dim=(2, 3))", lambda x: x.mean((2, 3))),
    ("mean(x, -1, true)", lambda x: x.mean(-1, keepdim=True)),
    ("ReduceMean()(x)", lambda x: x.mean()),
    ("reduce_sum(x, 1)", lambda x: x.sum(1)),
    ("ReduceSum(dim=(0, -1), keepdim=true)(x)", lambda x: x.sum((0, 3), keepdim=True)),
    ("flatten(x)", lambda x: x.flatten(1)),
    ("flatten(x, 2)", lambda x: x.flatten(2)),
])
def test_reductions_and_flatten(expr, ref):
    x = rand(2, 3, 4, 5)
    torch.testing.assert_close(build("in x: [N, C, H, W]", f"out {expr}")(x), ref(x))


def test_scalar_traits_follow_the_function():
    linear = {fn for fn in ("add", "sub", "rsub", "mul", "div", "rdiv", "pow", "neg")
              if T.ScalarArith(fn=fn, value=2.0).has(Trait.LINEAR)}
    affine = {fn for fn in ("add", "sub", "rsub", "mul", "div", "rdiv", "pow", "neg")
              if T.ScalarArith(fn=fn, value=2.0).has(Trait.AFFINE)}
    assert linear == {"mul", "div", "neg"}
    assert affine == {"add", "sub", "rsub"}
    assert all(T.ScalarArith(fn=fn).has(Trait.ELEMENTWISE) for fn in ("add", "pow"))


@pytest.mark.parametrize("fn", ["mul", "div", "neg"])
def test_linear_scalar_ops_are_linear(fn):
    f = build("in x: [N, 4]", {"mul": "out x * 3", "div": "out x / 3", "neg": "out -x"}[fn])
    x, y = rand(2, 4), rand(2, 4)
    torch.testing.assert_close(f(2 * x + 3 * y), 2 * f(x) + 3 * f(y))


def test_reductions_are_linear():
    f = build("in x: [N, 3, 4]", "out mean(x, 1) + reduce_sum(x, (1, 2), true)")
    x, y = rand(2, 3, 4), rand(2, 3, 4)
    torch.testing.assert_close(f(2 * x - y), 2 * f(x) - f(y))


def sym(d: int | str):
    """An int or a symbol."""
    return SymDim.symbol(d) if isinstance(d, str) else d


@st.composite
def broadcastable(draw):
    """Two broadcast-compatible shapes (ints and symbols) and concrete values for the symbols."""
    base = draw(st.lists(st.one_of(st.integers(1, 4), st.sampled_from("NTH")), min_size=1, max_size=4))
    a = [d if draw(st.booleans()) else 1 for d in base]
    b = [d if draw(st.booleans()) else 1 for d in base][draw(st.integers(0, len(base) - 1)):]
    env = {s: draw(st.integers(2, 4)) for s in "NTH"}
    return a, b, env


@given(broadcastable())
def test_broadcast_rule_matches_torch(case):
    a, b, env = case
    ta, tb = TensorType(shape=tuple(sym(d) for d in a)), TensorType(shape=tuple(sym(d) for d in b))
    out = T.Add().infer([ta, tb])[0]
    real = [env[d] if isinstance(d, str) else d for d in a], [env[d] if isinstance(d, str) else d for d in b]
    want = torch.broadcast_shapes(torch.Size(real[0]), torch.Size(real[1]))
    got = tuple(d if isinstance(d, int) else d.evaluate(env) for d in out.shape)
    assert got == tuple(want)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data())
def test_reduce_rule_matches_torch(shape, data):
    axes = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, unique_by=lambda a: a % len(shape)))
    keep = data.draw(st.booleans())
    op = T.ReduceSum(dim=tuple(axes), keepdim=keep).resolve([TensorType(shape=tuple(shape))])
    out = op.infer([TensorType(shape=tuple(shape))])[0]
    want = torch.zeros(shape).sum(op.dim, keepdim=keep).shape
    assert tuple(out.shape) == tuple(want)


@pytest.mark.parametrize(("inputs", "body", "message"), [
    ("in x: [N, 3]\n in y: [N, 4]", "out x + y", "do not broadcast"),
    ("in x: [N, 3]\n in y: [M, 3]", "out x * y", "do not broadcast"),
    ("in x: [N, 3]\n in y: [4, 5]", "out x @ y", "inner dims differ"),
    ("in x: [N, 3]", "out mean(x, dim=2)", "axis 2 is out of range"),
    ("in x: [N, 3]", "out reduce_sum(x, dim=(1, -1))", "axis repeated"),
    ("in x: int64[N, 3]", "out mean(x)", "ReduceMean: expects a floating-point tensor, got int64\\[N, 3\\]"),
    ("in x: [N, 3]\n in y: float64[N, 3]", "out x - y", "dtypes differ"),
])
def test_errors(inputs, body, message):
    with pytest.raises(archdsl.ArchError, match=message):
        archdsl.compile(f"model M() {{\n {inputs}\n {body}\n}}")
