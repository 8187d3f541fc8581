"""Free parameters (class tokens, position embeddings) and Embedding lookups, against torch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl.ir.dims import SymDim
from archdsl.ir.types import TensorType
from archdsl.ops.embed import Embedding, Parameter

NESTED = """
block Encoder(length: int, d: int) {
  in x: [N, length, d]
  pos_embedding = Parameter((1, length, d), "normal(std=0.02)")
  out x + pos_embedding
}
model M() {
  in x: [N, 4, 8]
  class_token = Parameter((1, 1, 8), "zeros")
  encoder = Encoder(5, 8)
  out concat([expand_as(class_token, x, 0), x], dim=1) |> encoder
}
"""


def test_parameters_are_named_by_their_path():
    graph = archdsl.compile(NESTED)
    module = archdsl.build(graph).double()
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {
        "class_token": (1, 1, 8), "encoder.pos_embedding": (1, 5, 8)}
    assert graph.params["encoder.pos_embedding"].init == "normal(std=0.02)"
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    token = module.class_token.expand(3, -1, -1)
    torch.testing.assert_close(module(x), torch.cat([token, x], 1) + module.encoder.pos_embedding)


@pytest.mark.parametrize(("init", "check"), [
    ('"zeros"', lambda t: torch.all(t == 0)),
    ('"ones"', lambda t: torch.all(t == 1)),
    ('"constant(value=0.5)"', lambda t: torch.all(t == 0.5)),
    ('"normal(std=0.02)"', lambda t: abs(t.std().item() - 0.02) < 0.002 and abs(t.mean().item()) < 0.002),
    ('"trunc_normal(std=0.02)"', lambda t: t.abs().max().item() <= 0.04 and t.std().item() > 0.01),
    ('init="uniform(a=-1, b=1)"', lambda t: t.min().item() >= -1 and t.max().item() <= 1 and t.std().item() > 0.5),
])
def test_initialisers(init, check):
    module = archdsl.build(f"model M() {{\n in x: [N, 64, 64]\n p = Parameter((1, 64, 64), {init})\n out x * p\n}}")
    assert isinstance(module.p, torch.nn.Parameter) and check(module.p.detach())


def test_parameter_declaration():
    op = Parameter(shape=(1, 1, 768), init="trunc_normal(std=0.02)")
    assert op.infer([]) == [TensorType(shape=(1, 1, 768))]
    assert list(op.params([])) == [""]


def test_embedding_is_nn_embedding():
    spec = "model M() {\n in ids: int64[B, T]\n tok = Embedding(10, 8, padding_idx=0)\n out ids |> tok\n}"
    graph = archdsl.compile(spec)
    assert graph.output_types()["out"] == TensorType(shape=(SymDim.symbol("B"), SymDim.symbol("T"), 8))
    module = archdsl.build(graph, seed=0)
    torch.manual_seed(0)
    ref = torch.nn.Embedding(10, 8, padding_idx=0)
    assert torch.equal(module.tok.weight, ref.weight) and torch.all(module.tok.weight[0] == 0)
    ids = torch.tensor([[0, 3, 9], [1, 1, 2]])
    torch.testing.assert_close(module(ids), F.embedding(ids, ref.weight))


def test_embedding_takes_int32():
    module = archdsl.build("model M() {\n in ids: int32[T]\n e = Embedding(4, 2)\n out ids |> e\n}")
    assert module(torch.tensor([0, 3], dtype=torch.int32)).shape == (2, 2)


@given(st.lists(st.one_of(st.integers(1, 3), st.sampled_from("BT")), max_size=3), st.integers(1, 5))
def test_embedding_shape_rule_matches_torch(lead, dim):
    env = {"B": 2, "T": 3}
    t = TensorType(shape=tuple(SymDim.symbol(d) if isinstance(d, str) else d for d in lead), dtype="int64")
    out = Embedding(num_embeddings=4, embedding_dim=dim).infer([t])[0]
    real = F.embedding(torch.zeros([env.get(d, d) for d in lead], dtype=torch.long), torch.zeros(4, dim))
    assert out.dtype == "float32"
    assert tuple(d if isinstance(d, int) else d.evaluate(env) for d in out.shape) == tuple(real.shape)


@pytest.mark.parametrize(("body", "message"), [
    ('p = Parameter((1, 3), "gaussian")\n out x + p', "unknown initialiser 'gaussian'"),
    ('p = Parameter((1, 3), "normal(sd=1)")\n out x + p', "normal takes keyword arguments mean, std"),
    ('p = Parameter((1, 3), "normal(std=big)")\n out x + p', "std must be a number"),
    ("p = Parameter((0, 3))\n out x + p", "sizes must be positive"),
    ("p = Parameter((N, 3))\n out x + p", "bad value for 'shape'"),
    ("p = Parameter((1, 4), \"zeros\")\n out x + p", "do not broadcast"),
    ("e = Embedding(10, 4)\n out x |> e", "expects integer ids"),
    ("e = Embedding(10, 4, padding_idx=10)\n out ids |> e", "padding_idx 10 is out of range"),
    ("e = Embedding(0, 4)\n out ids |> e", "bad value for 'num_embeddings'"),
])
def test_errors(body, message):
    with pytest.raises(archdsl.ArchError, match=message):
        archdsl.compile(f"model M() {{\n in x: [N, 3]\n in ids: int64[N]\n {body}\n}}")
