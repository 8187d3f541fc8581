"""Values computed from parameters and buffers alone (backends/torch/codegen_cache.py, runtime.parameter_values).

A generated module computes them once and reuses them while they cannot have changed; these tests hold the
cached module to the uncached one (``generate_source(cache=False)``, the values computed inline every call) bit
for bit, count the recomputations, and check every way a source can change (in-place edits, load_state_dict,
``.double()``, replaced tensors, buffers) and every way the ops can be watched (tracing, compile, export,
dispatch modes) recomputes.
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl.backends.torch.build import load_source
from archdsl.backends.torch.codegen import class_name, generate_source
from archdsl.backends.torch.codegen_cache import ParameterValues
from archdsl.backends.torch.runtime import VALUES_ATTR
from archdsl.ir.graph import Graph

SPEC = """model Case() {
  in x: [N, 4, 6, 6]
  table = Parameter((4, 6), "normal")
  a = Parameter((6, 3), "normal")
  b = Parameter((3, 6), "normal")
  c = Parameter((6, 6), "normal")
  idx = Buffer(absolute(reshape(arange(6), (6, 1)) - reshape(arange(6), (1, 6))), persistent=false)
  scale = Buffer(arange(6) + 1)
  bias = index_select(table, idx, 1)
  w = softmax(a @ b, -1) * scale
  out x @ w + bias + transpose(c, 0, 1)
}"""


def build(graph: Graph, cache: bool, seed: int = 0) -> torch.nn.Module:
    cls = load_source(generate_source(graph, cache=cache), class_name(graph))
    torch.manual_seed(seed)
    return cls()


def computed(module: torch.nn.Module) -> int:
    """How many calls computed the cached values (0 before the first cached call)."""
    cache = module.__dict__.get(VALUES_ATTR)
    return 0 if cache is None else cache.computed


@pytest.fixture(scope="module")
def graph() -> Graph:
    return archdsl.compile(SPEC)


@pytest.fixture
def pair(graph):
    return build(graph, cache=True).eval(), build(graph, cache=False).eval()


X = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(1))


def same(cached: torch.nn.Module, plain: torch.nn.Module, x: torch.Tensor = X) -> None:
    with torch.no_grad():
        assert torch.equal(cached(x), plain(x))


def test_the_gather_and_the_weight_product_are_cached_not_a_bare_transpose(graph):
    values = ParameterValues(graph)
    assert sorted(values.frontier) == ["index_select", "mul"]    # a transpose of c is a view: read inline
    source = generate_source(graph)
    method, forward = source.split("def _parameter_values")[1].split("def _parameter_sources")[0], source.split("def forward")[1]
    assert "table[:, self.idx]" in method and "a @ b" in method and ".transpose(" not in method
    assert "rt.parameter_values(self)" in forward and "if parameter_values is None:" in forward
    assert "parameter_values" not in generate_source(graph, cache=False)


def test_eval_under_no_grad_computes_once(pair):
    cached, plain = pair
    for _ in range(4):
        same(cached, plain)
    assert computed(cached) == 1
    calls = []
    inner = cached._parameter_values
    cached._parameter_values = lambda: calls.append(1) or inner()
    same(cached, plain)
    assert calls == [] and computed(cached) == 1
    with torch.inference_mode():                     # inference tensors are kept apart from ordinary ones
        assert torch.equal(cached(X), plain(X))
    assert computed(cached) == 2
    same(cached, plain)
    assert computed(cached) == 3


def test_frozen_weights_cache_with_grad_enabled(pair):
    cached, plain = pair
    for m in pair:
        m.requires_grad_(False)
    x = X.clone().requires_grad_(True)
    for _ in range(3):
        xa, xb = x.detach().clone().requires_grad_(True), x.detach().clone().requires_grad_(True)
        cached(xa).sum().backward()
        plain(xb).sum().backward()
        assert torch.equal(xa.grad, xb.grad)
    assert computed(cached) == 1


@pytest.mark.parametrize("train", [True, False])
def test_gradients_are_the_uncached_ones_and_recomputed_each_step(pair, train):
    cached, plain = pair
    for _ in range(2):
        grads = []
        for m in pair:
            m.train(train)
            m.zero_grad(set_to_none=True)
            x = X.clone().requires_grad_(True)
            out = m(x)
            out.backward(torch.linspace(-1, 1, out.numel()).reshape(out.shape))
            grads.append([p.grad for p in m.parameters()] + [x.grad])
        assert all(torch.equal(u, v) for u, v in zip(*grads, strict=True))
    assert computed(cached) == 0                         # autograd needs the values: never kept


def test_in_place_edits_are_seen(pair):
    cached, plain = pair
    same(cached, plain)
    with torch.no_grad():
        for m in pair:
            m.table.mul_(2.0)
    same(cached, plain)
    with torch.no_grad():
        for m in pair:
            m.a[0, 0] += 1.0                             # an indexed write bumps the version too
            m.scale.add_(1)                              # a buffer
    same(cached, plain)
    assert computed(cached) == 3


def test_load_state_dict_and_replaced_tensors_are_seen(graph, pair):
    cached, plain = pair
    same(cached, plain)
    other = build(graph, cache=False, seed=5).state_dict()
    for m in pair:
        m.load_state_dict(other)
    same(cached, plain)
    other = build(graph, cache=False, seed=6).state_dict()
    for m in pair:
        m.load_state_dict(other, assign=True)           # new tensor objects
    same(cached, plain)
    fresh = torch.randn(4, 6)
    for m in pair:
        m.table.data = fresh.clone()                    # same Parameter, new storage, same version
    same(cached, plain)
    for m in pair:
        m.table = torch.nn.Parameter(torch.randn(4, 6, generator=torch.Generator().manual_seed(3)))
    same(cached, plain)
    assert computed(cached) == 5


def test_dtype_changes_and_train_eval_forget(pair):
    cached, plain = pair
    same(cached, plain)
    for m in pair:
        m.double()
    same(cached, plain, X.double())
    assert computed(cached) == 2
    for m in pair:
        m.table.data.add_(1.0)                          # through .data: no version counter sees it ...
        m.eval()                                        # ... and eval() (train()) forgets the values
    same(cached, plain, X.double())
    assert computed(cached) == 3


def test_state_dict_copies_and_pickles(graph, pair):
    cached, plain = pair
    same(cached, plain)
    assert list(cached.state_dict()) == list(plain.state_dict())
    assert [n for n, _ in cached.named_buffers()] == [n for n, _ in plain.named_buffers()]
    twin = copy.deepcopy(cached)
    assert computed(twin) == 0
    with torch.no_grad():
        twin.table.add_(1.0)
    assert not torch.equal(twin(X), cached(X))
    same(cached, plain)
    assert computed(cached) == 1
    restored = pickle.loads(pickle.dumps(cached))
    assert computed(restored) == 0
    same(restored, plain)
    buffer = io.BytesIO()
    torch.save(cached, buffer)
    buffer.seek(0)
    same(torch.load(buffer, weights_only=False), plain)


def test_returned_values_are_never_the_cache_s_own():
    spec = """model Case() {
  in x: [N, 6]
  a = Parameter((6, 6), "normal")
  w = softmax(a, -1)
  out y = x @ w
  out table = dropout(softmax(a, 0), 0.5)
  out view = transpose(softmax(a, 1), 0, 1)
}"""
    graph = archdsl.compile(spec)
    assert ParameterValues(graph).frontier == ["softmax"]
    cached, plain = build(graph, cache=True).eval(), build(graph, cache=False).eval()
    x = torch.randn(3, 6)
    with torch.no_grad():
        for _ in range(2):
            got, want = cached(x), plain(x)
            assert all(torch.equal(u, v) for u, v in zip(got, want, strict=True))
            for t in got:
                t.add_(1.0)                             # the caller owns what it is given
    assert computed(cached) == 1


def test_cached_values_are_never_overwritten_in_place():
    spec = """model Case() {
  in x: [4, 6]
  a = Parameter((4, 6), "normal")
  b = Parameter((4, 6), "normal")
  out relu(dropout(a * b, 0.1) + x) + relu(a * b)
}"""
    graph = archdsl.compile(spec)
    assert ParameterValues(graph).frontier
    cached, plain = build(graph, cache=True).eval(), build(graph, cache=False).eval()
    x = torch.randn(4, 6)
    for _ in range(3):
        same(cached, plain, x)
    assert computed(cached) == 1


@pytest.mark.filterwarnings("ignore:`torch.jit.trace.* is deprecated:DeprecationWarning")
def test_traces_compile_and_export_compute_the_values(graph, pair):
    cached, plain = pair
    same(cached, plain)                                 # a cache entry exists: none of these may use it
    with torch.no_grad():
        traced = torch.jit.trace(cached, (X,), check_trace=False)
    assert "aten::index" in str(traced.graph)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(cached, fullgraph=True, backend="eager")
        with torch.no_grad():
            assert torch.equal(compiled(X), plain(X))
            for m in pair:
                m.table.mul_(3.0)
            assert torch.equal(compiled(X), plain(X))
            assert torch.equal(traced(X), plain(X))
    finally:
        torch._dynamo.reset()
    program = torch.export.export(cached, (X,))
    assert any(n.target is torch.ops.aten.index.Tensor for n in program.graph.nodes)
    assert {k for k, _ in program.named_parameters()} == {k for k, _ in cached.named_parameters()}
    with torch.no_grad():
        assert torch.equal(program.module()(X), plain(X))
    assert computed(cached) == 1


def test_dispatch_modes_see_every_op(pair):
    from torch.utils.flop_counter import FlopCounterMode

    cached, _ = pair
    counts = []
    for _ in range(2):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            cached(X)
        counts.append(counter.get_total_flops())
    assert counts[0] == counts[1] > 0 and computed(cached) == 0


def test_levit_reuses_its_attention_biases_bitwise():
    graph = archdsl.zoo.compile("levit_128")
    assert len(ParameterValues(graph).frontier) == 14          # one gathered bias table per attention
    cached, plain = build(graph, cache=True).eval(), build(graph, cache=False).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        same(cached, plain, x)
    assert computed(cached) == 1


@st.composite
def chains(draw) -> str:
    """A model mixing parameter-only values (from three [4, 4] parameters and a constant index) with values of
    the input x [N, 4, 4]: each op reads any earlier values; one value is added to x, the unread ones are outputs
    (some parameter-only)."""
    lines, values, read = [], ["x", "p0", "p1", "p2"], set()
    for i in range(draw(st.integers(2, 8))):
        kind = draw(st.sampled_from(("unary", "add", "matmul", "transpose", "gather", "dropout")))
        pool = values + ["p0", "p1", "p2"]                # parameters twice as likely: more cached chains
        src, other = draw(st.sampled_from(pool)), draw(st.sampled_from(pool))
        read.update((src, other) if kind in ("add", "matmul") else (src,))
        expr = {"unary": f"{draw(st.sampled_from(('sigmoid', 'tanh', 'relu')))}({src})",
                "add": f"{src} + {other}", "matmul": f"{src} @ {other}", "transpose": f"transpose({src}, -1, -2)",
                "gather": f"index_select({src}, _idx, -1)", "dropout": f"dropout({src}, 0.25)"}[kind]
        lines.append(f"  v{i} = {expr}")
        values.append(f"v{i}")
    mixed = draw(st.sampled_from(values[4:]))        # one value meets the input: x + it
    read.add(mixed)
    outs = [f"x + {mixed}"] + [v for v in values if v not in read]    # parameters among them: outputs of them alone
    return "\n".join(["model Case() {", "  in x: [N, 4, 4]",
                      *(f'  p{i} = Parameter((4, 4), "normal")' for i in range(3)),
                      "  _idx = Buffer(arange(3, -1, -1), persistent=false)", *lines,
                      *(f"  out o{i} = {v}" for i, v in enumerate(outs)), "}"])


@given(chains(), st.integers(0, 2))
def test_cached_modules_are_the_uncached_ones_bit_for_bit(spec: str, edited: int) -> None:
    graph = archdsl.compile(spec)
    cached, plain = build(graph, cache=True), build(graph, cache=False)
    x = torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(0))

    def outputs(m, grad):
        torch.manual_seed(1)                            # the same dropout draws on both sides
        with torch.set_grad_enabled(grad):
            out = m(x)
        return out if isinstance(out, tuple) else (out,)

    for train, grad in ((True, True), (False, True), (False, False), (False, False)):
        for m in (cached, plain):
            m.train(train)
        got, want = outputs(cached, grad), outputs(plain, grad)
        assert all(torch.equal(u, v) for u, v in zip(got, want, strict=True))
        if grad:
            for outs, m in ((got, cached), (want, plain)):
                m.zero_grad(set_to_none=True)
                losses = [o.sum() for o in outs if o.requires_grad]
                if losses:
                    torch.autograd.backward(losses)
            assert all((p.grad is None and q.grad is None) or torch.equal(p.grad, q.grad)
                       for p, q in zip(cached.parameters(), plain.parameters(), strict=True))
        with torch.no_grad():
            for m in (cached, plain):
                getattr(m, f"p{edited}").mul_(-0.5)


def test_autocast_and_functional_call_compute_the_values(pair):
    cached, plain = pair
    same(cached, plain)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(cached(X), plain(X))
    assert computed(cached) == 1
    swapped = {"table": torch.randn(4, 6, generator=torch.Generator().manual_seed(7))}
    with torch.no_grad():
        got = torch.func.functional_call(cached, swapped, (X,))
        assert torch.equal(got, torch.func.functional_call(plain, swapped, (X,)))
    same(cached, plain)                                 # its own table again
    grads = [torch.func.grad(lambda p, m=m: torch.func.functional_call(m, p, (X,)).sum())(
        {"table": m.table.detach()})["table"] for m in pair]
    assert torch.equal(*grads)


def test_submodule_calls_stay_in_forward():
    """A Linear applied to a parameter runs every call: its forward hooks (weight_norm's) must see each one."""
    graph = archdsl.compile("model Case() {\n  in x: [N, 6]\n  p = Parameter((6, 6), \"normal\")\n"
                            "  proj = Linear(6)\n  out x @ (p |> proj)\n}")
    assert not ParameterValues(graph).region
    module = build(graph, cache=True).eval()
    calls = []
    module.proj.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        module(torch.randn(2, 6))
        module(torch.randn(2, 6))
    assert len(calls) == 2
