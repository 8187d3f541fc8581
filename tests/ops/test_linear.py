"""Dense layers: Linear and Bilinear match nn.Linear / nn.Bilinear in names, default init and outputs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl.ir.dims import SymDim
from archdsl.ir.types import TensorType
from archdsl.ops.linear import Bilinear, Linear


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """state_dict names and shapes."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_linear_is_nn_linear():
    graph = archdsl.compile("model M() {\n in x: [N, T, 4]\n fc = Linear(5)\n out x |> fc\n}")
    module = archdsl.build(graph, seed=0)
    assert shapes(module) == {"fc.weight": (5, 4), "fc.bias": (5,)}
    assert {k: tuple(p.shape) for k, p in graph.params.items()} == shapes(module)
    torch.manual_seed(0)
    ref = torch.nn.Linear(4, 5)
    assert torch.equal(module.fc.weight, ref.weight) and torch.equal(module.fc.bias, ref.bias)
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(module.double()(x), ref.double()(x))


def test_linear_without_bias():
    module = archdsl.build("model M() {\n in x: [N, 4]\n head = Linear(out_features=2, bias=false)\n out x |> head\n}")
    assert shapes(module) == {"head.weight": (2, 4)}


def test_bilinear_is_nn_bilinear():
    spec = "model M() {\n in a: [N, 4]\n in b: [N, 6]\n bil = Bilinear(3)\n out bil(a, b)\n}"
    module = archdsl.build(spec, seed=0)
    assert shapes(module) == {"bil.weight": (3, 4, 6), "bil.bias": (3,)}
    torch.manual_seed(0)
    ref = torch.nn.Bilinear(4, 6, 3)
    assert torch.equal(module.bil.weight, ref.weight) and torch.equal(module.bil.bias, ref.bias)
    a, b = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    torch.testing.assert_close(module.double()(a, b), ref.double()(a, b))


def test_costs_count_multiply_accumulates():
    n = SymDim.symbol("N")
    lin, bil = Linear(out_features=5), Bilinear(out_features=3)
    x = TensorType(shape=(n, 4))
    assert lin.cost([x], lin.infer([x])).macs == n * 20
    ins = [x, TensorType(shape=(n, 6))]
    assert bil.cost(ins, bil.infer(ins)).macs == n * 72


lead = st.lists(st.one_of(st.integers(1, 3), st.sampled_from("NT")), max_size=3)


@given(lead, st.integers(1, 5), st.integers(1, 5), st.integers(1, 5))
def test_shape_rules_match_torch(batch, in1, in2, out):
    env = {"N": 2, "T": 3}
    dims = tuple(SymDim.symbol(d) if isinstance(d, str) else d for d in batch)
    real = [env[d] if isinstance(d, str) else d for d in batch]
    x1, x2 = TensorType(shape=(*dims, in1)), TensorType(shape=(*dims, in2))
    got_lin = Linear(out_features=out).infer([x1])[0]
    got_bil = Bilinear(out_features=out).infer([x1, x2])[0]
    want_lin = torch.nn.functional.linear(torch.zeros(*real, in1), torch.zeros(out, in1)).shape
    want_bil = torch.nn.functional.bilinear(torch.zeros(*real, in1), torch.zeros(*real, in2),
                                            torch.zeros(out, in1, in2)).shape
    for got, want in ((got_lin, want_lin), (got_bil, want_bil)):
        assert tuple(d if isinstance(d, int) else d.evaluate(env) for d in got.shape) == tuple(want)


@pytest.mark.parametrize(("inputs", "body", "message"), [
    ("in x: [N, C]", "fc = Linear(5)\n out x |> fc", "needs a known feature size on the last axis"),
    ("in x: [N, 4]", "fc = Linear(0)\n out x |> fc", "bad value for 'out_features'"),
    ("in x: [N, 4]", "out x |> Linear(5)", "needs a name"),
    ("in x: [N, 4]", "fc = Linear()\n out x |> fc", "needs the argument 'out_features'"),
    ("in a: [N, 4]\n in b: [M, 6]", "bil = Bilinear(3)\n out bil(a, b)", "same leading axes"),
    ("in a: [N, 4]", "bil = Bilinear(3)\n out bil(a)", "takes 2 tensor input"),
])
def test_errors(inputs, body, message):
    with pytest.raises(archdsl.ArchError, match=message):
        archdsl.compile(f"model M() {{\n {inputs}\n {body}\n}}")
