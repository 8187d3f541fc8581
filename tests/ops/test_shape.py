"""Shape ops: specs compiled once with symbolic sizes, run at several sizes against torch; shape rules vs torch."""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import archdsl
from archdsl.ir.dims import SymDim
from archdsl.ir.graph import Graph
from archdsl.ir.types import TensorType
from archdsl.ops import shape as S

# (body over x: [N, 6, H, W], reference on a concrete tensor)
CASES = [
    ("out reshape(x, (N, 6, H*W))", lambda x: x.reshape(x.shape[0], 6, -1)),
    ("out reshape(x, (N, -1))", lambda x: x.reshape(x.shape[0], -1)),
    ("out reshape(x, (N, 2, 3, H, W))", lambda x: x.reshape(x.shape[0], 2, 3, *x.shape[2:])),
    ("out reshape(x, (-1, W))", lambda x: x.reshape(-1, x.shape[3])),
    ("out reshape(flatten(x), (N, 6, -1))", lambda x: x.flatten(2)),
    ("out expand(unsqueeze(x, 1), (N, 3, 6, H, W))", lambda x: x.unsqueeze(1).expand(-1, 3, -1, -1, -1)),
    ("out expand(x, (2, -1, -1, -1, -1))", lambda x: x.expand(2, *x.shape)),
    ("out expand_as(mean(x, (2, 3), true), x)", lambda x: x.mean((2, 3), keepdim=True).expand_as(x)),
    ("out expand_as(reduce_sum(x, 0, true), x, 0)", lambda x: x.sum(0, keepdim=True).expand_as(x)),
    ("out permute(x, (0, 2, 3, 1))", lambda x: x.permute(0, 2, 3, 1)),
    ("out transpose(x, 1, -1)", lambda x: x.transpose(1, 3)),
    ("out squeeze(unsqueeze(x, 2), 2)", lambda x: x),
    ("out x |> AdaptiveAvgPool2d(1) |> squeeze", lambda x: x.mean((2, 3))),
    ("out unsqueeze(x, -1)", lambda x: x.unsqueeze(-1)),
    ("out concat([x, relu(x), x], dim=1)", lambda x: torch.cat([x, x.relu(), x], 1)),
    ("out concat([x, x])", lambda x: torch.cat([x, x])),
    ("a, b, c = split(x, 2, dim=1)\n out concat([c, a, b], 1)", lambda x: torch.cat([x[:, 4:], x[:, :4]], 1)),
    ("_a, b = split(x, (1, 5), 1)\n out b", lambda x: x[:, 1:]),
    ("a, b = chunk(x, 2, 1)\n out a * b", lambda x: x[:, :3] * x[:, 3:]),
    ("a, b = chunk(concat([x, x], 2), 2, dim=2)\n out a - b", lambda x: x * 0),
    ("out chunk(x, 1, 1) + split(x, 6, 1)", lambda x: 2 * x),
    ("out slice(x, 1, 1, 5, 2)", lambda x: x[:, 1:5:2]),
    ("out slice(x, 2, -2)", lambda x: x[:, :, -2:]),
    ("out slice(x, dim=3, start=1)", lambda x: x[:, :, :, 1:]),
    ("out slice(x, 3, none, -1, 2)", lambda x: x[:, :, :, :-1:2]),
    ("out select(x, 1, -1)", lambda x: x[:, -1]),
    ("out identity(x)", lambda x: x),
]
SIZES = [{"N": 2, "H": 3, "W": 5}, {"N": 1, "H": 6, "W": 4}]


@functools.cache
def compiled(body: str) -> tuple[Graph, torch.nn.Module]:
    """Compile and build a model over x: [N, 6, H, W] once per body."""
    graph = archdsl.compile(f"model M() {{\n in x: [N, 6, H, W]\n {body}\n}}")
    return graph, archdsl.build(graph).double().eval()


def concrete(t: TensorType, env: dict[str, int]) -> tuple[int, ...]:
    """A type's shape with every symbol bound."""
    return tuple(d if isinstance(d, int) else d.evaluate(env) for d in t.shape)


@pytest.mark.parametrize(("body", "ref"), CASES, ids=[c[0].replace("\n", ";") for c in CASES])
def test_matches_torch_at_several_sizes(body, ref):
    graph, module = compiled(body)
    for env in SIZES:
        x = torch.randn(env["N"], 6, env["H"], env["W"], dtype=torch.float64)
        out = module(x)
        torch.testing.assert_close(out, ref(x))
        assert tuple(out.shape) == concrete(graph.output_types()["out"], env)


def test_symbolic_attributes_round_trip_through_json():
    graph, _ = compiled("out reshape(x, (N, 6, H*W))")
    node = graph.nodes[0]
    assert node.op.shape[2] == SymDim.symbol("H") * SymDim.symbol("W")
    assert Graph.from_json(graph.to_json()) == graph


def sym_or_int(d: int | str):
    """An int or a symbol."""
    return SymDim.symbol(d) if isinstance(d, str) else d


@st.composite
def reshapes(draw):
    """A shape and a random re-factorisation of its element count, maybe with one -1."""
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    n, target = 1, []
    for d in shape:
        n *= d
    while n > 1:
        f = draw(st.sampled_from([k for k in range(2, n + 1) if n % k == 0]))
        target.append(f)
        n //= f
    target = target or [1]
    if draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return shape, target


@given(reshapes())
def test_reshape_rule_matches_torch(case):
    shape, target = case
    out = S.Reshape(shape=tuple(target)).infer([TensorType(shape=tuple(shape))])[0]
    assert tuple(out.shape) == tuple(torch.zeros(shape).reshape(target).shape)


@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), st.integers(1, 6), st.data())
def test_symbolic_reshape_cancels_batch_axes(rest, n, data):
    """[N, *rest] -> (N, -1) and (N, prod, 1) keep the symbol; evaluated they match torch."""
    t = TensorType(shape=(SymDim.symbol("N"), *rest))
    target = data.draw(st.sampled_from([(SymDim.symbol("N"), -1), (-1, *rest), (SymDim.symbol("N"), 1, -1)]))
    out = S.Reshape(shape=target).infer([t])[0]
    real = [n if isinstance(d, SymDim) else d for d in target]
    assert concrete(out, {"N": n}) == tuple(torch.zeros(n, *rest).reshape(real).shape)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=5), st.data())
def test_permute_transpose_unsqueeze_rules(shape, data):
    t = TensorType(shape=tuple(shape))
    x = torch.zeros(shape)
    dims = data.draw(st.permutations(range(len(shape))))
    assert tuple(S.Permute(dims=tuple(dims)).infer([t])[0].shape) == tuple(x.permute(dims).shape)
    a, b = data.draw(st.integers(-len(shape), len(shape) - 1)), data.draw(st.integers(0, len(shape) - 1))
    assert tuple(S.Transpose(dim0=a, dim1=b).infer([t])[0].shape) == tuple(x.transpose(a, b).shape)
    u = data.draw(st.integers(-len(shape) - 1, len(shape)))
    assert tuple(S.Unsqueeze(dim=u).infer([t])[0].shape) == tuple(x.unsqueeze(u).shape)
    op = S.Squeeze().resolve([t])
    assert tuple(op.infer([t])[0].shape) == tuple(x.squeeze().shape)


@given(st.integers(1, 12), st.integers(1, 7), st.integers(0, 2))
def test_split_and_chunk_rules(size, k, axis):
    shape = [2, 3, 2]
    shape[axis] = size
    t, x = TensorType(shape=tuple(shape)), torch.zeros(shape)
    for op, real in ((S.Split(split_size_or_sections=k, dim=axis), torch.split(x, k, axis)),
                     (S.Chunk(chunks=k, dim=axis), torch.chunk(x, k, axis))):
        assert [tuple(o.shape) for o in op.infer([t])] == [tuple(r.shape) for r in real]


@given(st.integers(1, 4), st.integers(1, 5))
def test_symbolic_chunk(k, t_value):
    """[B, k*T] chunks into k pieces of [B, T]."""
    t = TensorType(shape=(SymDim.symbol("B"), k * SymDim.symbol("T")))
    outs = S.Chunk(chunks=k, dim=-1).infer([t])
    real = torch.chunk(torch.zeros(2, k * t_value), k, -1)
    assert [concrete(o, {"B": 2, "T": t_value}) for o in outs] == [tuple(r.shape) for r in real]


bounds = st.one_of(st.none(), st.integers(-6, 6))


@given(st.one_of(st.integers(1, 8), st.just("L")), bounds, bounds, st.integers(1, 3), st.integers(6, 9))
def test_slice_rule_matches_python(size, start, end, step, value):
    t = TensorType(shape=(2, sym_or_int(size)))
    real = len(range(value if size == "L" else size)[start:end:step])
    assume(real > 0)
    op = S.Slice(dim=1, start=start, end=end, step=step)
    assert concrete(op.infer([t])[0], {"L": value}) == (2, real)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.lists(st.integers(1, 4), min_size=1, max_size=3),
       st.data())
def test_concat_rule_matches_torch(shape, extra, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    shapes = [list(shape) for _ in extra]
    for s, e in zip(shapes, extra, strict=True):
        s[axis] = e
    out = S.Concat(dim=axis).infer([TensorType(shape=tuple(s)) for s in shapes])[0]
    assert tuple(out.shape) == tuple(torch.cat([torch.zeros(s) for s in shapes], axis).shape)


@pytest.mark.parametrize(("body", "message"), [
    ("out reshape(x, (N, 5))", "cannot view"),
    ("out reshape(x, (-1, 6, -1))", "at most one size may be -1"),
    ("out reshape(x, (N, 4, -1))", "not a multiple of 4"),
    ("out permute(x, (0, 1, 1, 2))", "not a permutation"),
    ("out permute(x, (0, 1))", "name 2 axes"),
    ("out squeeze(x, 1)", "axis 1 of \\[N, 6, H, W\\] has size 6, not 1"),
    ("out squeeze(x, 0)", "has size N, not 1"),
    ("out concat([x, flatten(x, 2)], 1)", "tensor 2 is \\[N, 6, H\\*W\\] \\(float32, rank 3\\)"),
    ("out concat([x, x], 0 + 1, 2)", "at most 1 positional"),
    ("out concat([x, transpose(x, 2, 3)], 1)", "differs from tensor 1"),
    ("a, b = split(x, (2, 3), 1)\n out a", "add up to 5, but axis 1"),
    ("a, b = split(x, 2, 2)\n out a", "number of pieces"),
    ("a, b = chunk(x, 4, 2)\n out a", "not known to split into 4 equal pieces"),
    ("a, b = chunk(x, 3, 1)\n out a", "cannot unpack"),
    ("out slice(x, 1, 5, 2)", "is empty"),
    ("out slice(x, 1, 0, 2, 0)", "bad value for 'step'"),
    ("out expand(x, (N, 12, H, W))", "size 6 is not 1"),
    ("out expand(x, (6, H, W))", "fewer axes"),
    ("out expand(x, (-1, N, 6, H, W))", "-1 is not allowed for the new leading axes"),
    ("out expand_as(x, flatten(x))", "different ranks"),
    ("out select(x, 1, 6)", "index 6 is out of range"),
    ("out transpose(x, 0, 4)", "axis 4 is out of range"),
])
def test_errors(body, message):
    with pytest.raises(archdsl.ArchError, match=message):
        archdsl.compile(f"model M() {{\n in x: [N, 6, H, W]\n {body}\n}}")


def test_an_unused_chunk_is_a_warning() -> None:
    from archdsl.errors import ArchWarning

    with pytest.warns(ArchWarning, match="'b' is defined but never used"):
        archdsl.compile("model M() {\n in x: [N, 6, H, W]\n a, b = chunk(x, 2, 1)\n out a\n}")
