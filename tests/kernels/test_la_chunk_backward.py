"""The hand-written chunked backward of GLA, simple GLA and linear attention (torch.autograd.Function) against
autograd through the token-by-token naive form: every input's gradient (q, k, v, gate, initial state) for any
shape, ragged T, chunk size, with and without an initial state and a used final state; strong decays; varlen;
finite differences; second derivatives refused with a clear error."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from archdsl import kernels
from archdsl.backends.torch.kernels.gla import chunk as gla_chunk
from archdsl.backends.torch.kernels.gla import naive as gla_naive
from archdsl.backends.torch.kernels.simple_gla import chunk as sgla_chunk
from archdsl.backends.torch.kernels.simple_gla import naive as sgla_naive
from tests.kernels.la_helpers import rel

FAMILIES = ("gla", "simple_gla", "linear")


def _inputs(family, b, t, h, kd, vd, seed, strength=1.0):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    x = {"q": randn(b, t, h, kd), "k": randn(b, t, h, kd), "v": randn(b, t, h, vd), "h0": randn(b, h, kd, vd)}
    if family == "gla":
        x["g"] = F.logsigmoid(randn(b, t, h, kd)) * strength
    elif family == "simple_gla":
        x["g"] = F.logsigmoid(randn(b, t, h) + 1) * strength
    return {n: v.requires_grad_() for n, v in x.items()}


def _run(family, form, x, use_h0, final, chunk=None):
    g = x.get("g")
    h0 = x["h0"] if use_h0 else None
    if form == "naive":
        fn = gla_naive.naive_gla if family == "gla" else sgla_naive.naive_simple_gla
        return fn(x["q"], x["k"], x["v"], g, initial_state=h0, output_final_state=final)
    fn = gla_chunk.chunk_gla if family == "gla" else sgla_chunk.chunk_simple_gla
    kwargs = {} if chunk is None else {"chunk_size": chunk}
    return fn(x["q"], x["k"], x["v"], g, initial_state=h0, output_final_state=final, **kwargs)


def _grads(x, o, s, use_o, seed=7):
    gen = torch.Generator().manual_seed(seed)
    loss = torch.zeros((), dtype=torch.float64)
    if use_o:
        loss = loss + (o.double() * torch.randn(o.shape, generator=gen, dtype=torch.float64)).sum()
    if s is not None:
        loss = loss + (s.double() * torch.randn(s.shape, generator=gen, dtype=torch.float64)).sum()
    leaves = list(x.values())
    return torch.autograd.grad(loss, leaves, allow_unused=True, materialize_grads=True)


@given(family=st.sampled_from(FAMILIES), b=st.integers(1, 2), t=st.integers(1, 80), h=st.integers(1, 2),
       kd=st.integers(1, 6), vd=st.integers(1, 6), chunk=st.sampled_from([1, 2, 4, 16, 64]), use_h0=st.booleans(),
       final=st.booleans(), use_o=st.booleans(), seed=st.integers(0, 2**16))
def test_backward_equals_autograd_of_the_recurrence(family, b, t, h, kd, vd, chunk, use_h0, final, use_o, seed):
    """Ragged T (not a multiple of the chunk), any chunk size, initial state or not, loss on o and/or the state."""
    if not (use_o or final):
        use_o = True
    x = _inputs(family, b, t, h, kd, vd, seed)
    want = _grads(x, *_run(family, "naive", x, use_h0, final), use_o)
    got = _grads(x, *_run(family, "chunk", x, use_h0, final, chunk), use_o)
    for name, gw, gg in zip(x, want, got, strict=True):
        assert rel(gg, gw) < 1e-10 if gw.norm() > 0 else gg.norm() == 0, name


@pytest.mark.parametrize("family", ["gla", "simple_gla"])
@pytest.mark.parametrize("nats", [5.0, 60.0, 500.0])
def test_strong_decay_gradients_are_finite_and_exact(family, nats):
    """Decays of up to hundreds of nats per step: no overflow in the backward, float32 against float64 within
    1e-4 for every input, the gate included (GLA's factors are products of exp(g), never differences of a
    cumulative gate that reaches ~-3e4 inside a chunk)."""
    x = _inputs(family, 1, 100, 2, 8, 8, seed=3, strength=nats)
    want = _grads(x, *_run(family, "naive", x, True, True), True)
    y = {n: v.detach().float().requires_grad_() for n, v in x.items()}
    got = _grads(y, *_run(family, "chunk", y, True, True), True)
    for name, gw, gg in zip(x, want, got, strict=True):
        assert torch.isfinite(gg).all(), name
        assert rel(gg, gw) < 1e-4, (name, rel(gg, gw))


@pytest.mark.parametrize("family", FAMILIES)
def test_finite_differences(family):
    """torch.autograd.gradcheck of the chunked form (float64, ragged T over two chunks, initial and final state)."""
    x = _inputs(family, 1, 7, 2, 3, 2, seed=5)
    names = list(x)

    def fn(*args):
        o, s = _run(family, "chunk", dict(zip(names, args, strict=True)), True, True, chunk=4)
        return o, s

    assert torch.autograd.gradcheck(fn, tuple(x.values()))


@pytest.mark.parametrize("fn,gate", [("gla", "vector"), ("simple_gla", "scalar"), ("linear_attn", None)])
def test_varlen_gradients_equal_separate_sequences(fn, gate):
    lengths = [5, 70, 1, 33]
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
    gen = torch.Generator().manual_seed(0)
    total, h, d = sum(lengths), 2, 4
    q, k, v = (torch.randn(1, total, h, d, generator=gen, dtype=torch.float64) for _ in range(3))
    h0 = torch.randn(len(lengths), h, d, d, generator=gen, dtype=torch.float64)
    g = None
    if gate == "vector":
        g = F.logsigmoid(torch.randn(1, total, h, d, generator=gen, dtype=torch.float64))
    elif gate == "scalar":
        g = F.logsigmoid(torch.randn(1, total, h, generator=gen, dtype=torch.float64))
    leaves = [x.requires_grad_() for x in (q, k, v, h0, g) if x is not None]

    def call(q_, k_, v_, h0_, g_, cu_=None):
        extra = {"normalize": False} if fn == "linear_attn" else {}
        args = (q_, k_, v_) if g_ is None else (q_, k_, v_, g_)
        return getattr(kernels, fn)(*args, initial_state=h0_, output_final_state=True, cu_seqlens=cu_,
                                    mode="chunk", **extra)

    o, s = call(q, k, v, h0, g, cu)
    w_o = torch.randn(o.shape, generator=gen, dtype=torch.float64)
    w_s = torch.randn(s.shape, generator=gen, dtype=torch.float64)
    packed = torch.autograd.grad((o * w_o).sum() + (s * w_s).sum(), leaves)
    loss = 0
    for i, (a, b) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True)):
        oi, si = call(q[:, a:b], k[:, a:b], v[:, a:b], h0[i:i + 1], None if g is None else g[:, a:b])
        loss = loss + (oi * w_o[:, a:b]).sum() + (si * w_s[i:i + 1]).sum()
    separate = torch.autograd.grad(loss, leaves)
    for gp, gs in zip(packed, separate, strict=True):
        assert rel(gp, gs) < 1e-12


@pytest.mark.parametrize("family", FAMILIES)
def test_second_derivative_is_a_clear_error(family):
    x = _inputs(family, 1, 9, 1, 3, 3, seed=1)
    o, _ = _run(family, "chunk", x, True, False)
    with pytest.raises(RuntimeError, match="no second derivatives"):
        torch.autograd.grad(o.square().sum(), [x["q"]], create_graph=True)
    (dq,) = torch.autograd.grad(o.square().sum(), [x["q"]])     # without create_graph: fine
    assert torch.isfinite(dq).all()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("causal", [True, False])
def test_no_tokens_called_directly(family, causal):
    """T = 0 straight into the chunked function (the public API short-cuts it): empty output, state passed on."""
    x = _inputs(family, 2, 0, 3, 4, 5, seed=0)
    fn = gla_chunk.chunk_gla if family == "gla" else sgla_chunk.chunk_simple_gla
    h0 = x["h0"] if causal else None
    o, s = fn(x["q"], x["k"], x["v"], x.get("g"), initial_state=h0, output_final_state=causal, causal=causal)
    assert o.shape == (2, 0, 3, 5)
    assert (torch.equal(s, x["h0"]) if causal else s is None)
