"""Properties of the linear-attention forms: causality, split-and-resume, varlen, bidirectional quadratic form,
the field's known numerical bugs (as regressions), and clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from archdsl import kernels
from tests.kernels.la_helpers import CASE_IDS, CASES, loss_and_grads, rel

CAUSAL_CASES = [c for c in CASES if "cosformer" not in c.name]   # cosFormer's weights depend on the length


@given(case=st.sampled_from(CASES), t=st.integers(2, 80), data=st.data())
def test_causality(case, t, data):
    """Perturbing token s changes no output before s."""
    s = data.draw(st.integers(0, t - 1))
    x = case.inputs(1, t, 2, 4, torch.float64)
    o, _ = case.run(x, "chunk", state=False)
    y = {k: v.detach().clone() for k, v in x.items()}
    for name in ("q", "k", "v"):
        y[name][:, s] += 1.0
    o2, _ = case.run(y, "chunk", state=False)
    assert torch.equal(o[:, :s], o2[:, :s])
    assert not torch.equal(o[:, s:], o2[:, s:])


@given(case=st.sampled_from(CAUSAL_CASES), t=st.integers(2, 150), data=st.data())
def test_split_and_resume(case, t, data):
    """Running T in two pieces with the state passed on equals one run (outputs and final state)."""
    cut = data.draw(st.integers(1, t - 1))
    x = case.inputs(2, t, 2, 4, torch.float64)
    o, s = case.run(x, "chunk")
    first = {k: (v[:, :cut] if v.ndim >= 3 and k != "initial_state" else v) for k, v in x.items()}
    second = {k: (v[:, cut:] if v.ndim >= 3 and k != "initial_state" else v) for k, v in x.items()}
    o1, s1 = case.run(first, "chunk")
    second["initial_state"] = s1
    o2, s2 = case.run(second, "chunk")
    assert rel(torch.cat([o1, o2], 1), o) < 1e-12
    assert rel(s2, s) < 1e-12


@pytest.mark.parametrize("case", CAUSAL_CASES, ids=[c.name for c in CAUSAL_CASES])
def test_token_by_token_decoding_equals_the_full_forward(case):
    """Decoding one token at a time with the recurrent form, the state passed on, equals one chunked run."""
    x = case.inputs(2, 23, 2, 4, torch.float64)
    o, s = case.run(x, "chunk")
    state, outs = x["initial_state"], []
    for t in range(23):
        step = {k: (v if k == "initial_state" else v[:, t:t + 1]) for k, v in x.items()}
        step["initial_state"] = state
        o_t, state = case.run(step, "recurrent")
        outs.append(o_t)
    assert rel(torch.cat(outs, 1), o) < 1e-12 and rel(state, s) < 1e-12


@pytest.mark.parametrize("mode", ["chunk", "naive", "recurrent"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_varlen_equals_separate_sequences(case, mode):
    lengths = [5, 70, 1, 33]
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
    x = case.inputs(1, sum(lengths), 2, 4, torch.float64)
    h0 = case.inputs(len(lengths), 1, 2, 4, torch.float64)["initial_state"]
    packed = dict(x, initial_state=h0)
    o, s = case.run(packed, mode, cu_seqlens=cu)
    for i, (a, b) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True)):
        one = {k: (v[:, a:b] if k != "initial_state" else h0[i:i + 1]) for k, v in x.items()}
        oi, si = case.run(one, mode)
        assert rel(o[:, a:b], oi) < 1e-12, i
        assert rel(s[i:i + 1], si) < 1e-12, i
    grads = loss_and_grads(packed, o, s)
    assert all(torch.isfinite(g).all() for g in grads.values())


@pytest.mark.parametrize("gated", ["none", "scalar", "vector"])
def test_bidirectional_is_the_masked_quadratic_form(gated):
    """o[t] = scale * sum_s exp(G(t, s)) (q[t] . k[s]) v[s], G the gates strictly after min(s,t) up to max(s,t)."""
    torch.manual_seed(0)
    b, t, h, d = 2, 50, 2, 8
    q, k, v = (torch.randn(b, t, h, d, dtype=torch.float64) for _ in range(3))
    shape = {"none": (b, t, h), "scalar": (b, t, h), "vector": (b, t, h, d)}[gated]
    g = F.logsigmoid(torch.randn(shape, dtype=torch.float64)) * (gated != "none")
    cum = g.cumsum(1)                                                        # [B, T, H(, K)]
    diff = cum[:, :, None] - cum[:, None, :]                                 # [B, T, S, H(, K)]
    decay = torch.where(diff <= 0, diff, -diff).exp()                        # exp(-|c_t - c_s|): g <= 0
    if gated == "vector":
        scores = torch.einsum("bthk,bshk,btshk->bhts", q, k, decay)
    else:
        scores = torch.einsum("bthk,bshk->bhts", q, k) * decay.permute(0, 3, 1, 2)
    want = torch.einsum("bhts,bshv->bthv", scores, v) * d ** -0.5
    for mode in ("chunk", "naive"):
        if gated == "vector":
            o, _ = kernels.gla(q, k, v, g, causal=False, mode=mode)
        else:
            o, _ = kernels.simple_gla(q, k, v, g if gated == "scalar" else None, causal=False, mode=mode)
        assert rel(o, want) < 1e-12, mode


def test_no_nan_final_state_for_strong_decay_and_ragged_length():
    """fla's chunk_simple_gla returns a NaN final state when T % 64 != 0 and the decay exceeds ~1.6 nats/step."""
    torch.manual_seed(0)
    b, t, h, d = 1, 100, 2, 16
    q, k, v = (torch.randn(b, t, h, d) for _ in range(3))
    for nats in (1.7, 5.0, 30.0, 200.0):
        g = torch.full((b, t, h), -nats, requires_grad=True)
        o, s = kernels.simple_gla(q, k, v, g, output_final_state=True, mode="chunk")
        o_ref, s_ref = kernels.simple_gla(q.double(), k.double(), v.double(), g.double(), output_final_state=True,
                                          mode="naive")
        assert torch.isfinite(o).all() and torch.isfinite(s).all(), nats
        assert rel(o, o_ref) < 1e-5 and rel(s, s_ref) < 1e-5, nats
        (dg,) = torch.autograd.grad(o.sum() + s.sum(), g)
        assert torch.isfinite(dg).all(), nats


def test_gla_strong_vector_decay_is_finite():
    """Per-channel decays from 0 to 60 nats per step: no overflow in the chunked form, values and gradients."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 100, 2, 8) for _ in range(3))
    g = (-torch.rand(1, 100, 2, 8) * 60).requires_grad_()
    o, s = kernels.gla(q, k, v, g, output_final_state=True, mode="chunk")
    o_ref, s_ref = kernels.gla(q.double(), k.double(), v.double(), g.double(), output_final_state=True,
                               mode="naive")
    assert torch.isfinite(o).all() and torch.isfinite(s).all()
    assert rel(o, o_ref) < 1e-5 and rel(s, s_ref) < 1e-5
    (dg,) = torch.autograd.grad(o.sum() + s.sum(), g)
    assert torch.isfinite(dg).all()


def test_fp16_normaliser_keeps_dq():
    """fla's chunk_linear_attn(normalize=True) in fp16 loses ~91% of dq: the key sum overflows half precision."""
    torch.manual_seed(0)
    b, t, h, d = 1, 8192, 1, 16
    q, k = (torch.rand(b, t, h, d, dtype=torch.float64) + 1 for _ in range(2))
    v = torch.randn(b, t, h, d, dtype=torch.float64)
    assert ((q[:, -1] * d ** -0.5 * k.sum(1)).sum() > 65504).item()      # the denominator overflows fp16
    grads = {}
    for dtype in (torch.float64, torch.float16):
        qq = q.to(dtype).requires_grad_()
        o, _ = kernels.linear_attn(qq, k.to(dtype), v.to(dtype), normalize=True, mode="chunk")
        assert o.dtype == dtype and torch.isfinite(o).all()
        (grads[dtype],) = torch.autograd.grad(o.double().square().sum(), qq)
    assert rel(grads[torch.float16], grads[torch.float64]) < 2e-2


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_no_tokens(case):
    x = case.inputs(2, 0, 2, 4, torch.float64)
    o, s = case.run(x, "chunk")
    assert o.shape == (2, 0, 2, 4) and torch.equal(s, x["initial_state"])


@pytest.mark.parametrize(("call", "message"), [
    (lambda q, k, v: kernels.gla(q, k, v, q[..., 0]), "g must have shape"),
    (lambda q, k, v: kernels.simple_gla(q, k[:, :3], v), "q and k must have one shape"),
    (lambda q, k, v: kernels.simple_gla(q[0], k[0], v[0]), "must be [B, T, H, D]"),
    (lambda q, k, v: kernels.retention(q, k, v, initial_state=torch.zeros(2, 2, 3, 4)), "initial_state must be"),
    (lambda q, k, v: kernels.retention(q, k, v, causal=False, output_final_state=True), "no recurrent state"),
    (lambda q, k, v: kernels.retention(q, k, v, mode="fast"), "unknown mode"),
    (lambda q, k, v: kernels.retention(q, k, v, causal=False, mode="recurrent"), "causal only"),
    (lambda q, k, v: kernels.linear_attn(q, k, v, feature_map="cos"), "unknown feature map"),
    (lambda q, k, v: kernels.lightning_attn(q, k, v, 4, 4), "layer_idx must be in"),
    (lambda q, k, v: kernels.gla(q, k, v, q, causal=False, mode="recurrent"), "causal only"),
    (lambda q, k, v: kernels.simple_gla(q, k, v, cu_seqlens=torch.tensor([0, 3, 2])), "cu_seqlens must rise"),
    (lambda q, k, v: kernels.simple_gla(q, k, v, cu_seqlens=torch.tensor([0, 6])), "batch size must be 1"),
])
def test_bad_arguments_are_clear_value_errors(call, message):
    q, k, v = (torch.randn(2, 6, 2, 4) for _ in range(3))
    with pytest.raises(ValueError) as info:
        call(q, k, v)
    assert message in str(info.value)


@given(b=st.integers(1, 2), t=st.integers(1, 90), h=st.integers(1, 3), kd=st.integers(1, 9), vd=st.integers(1, 9),
       chunk=st.sampled_from([1, 3, 16, 64]), family=st.sampled_from(["simple_gla", "gla", "delta_rule"]),
       seed=st.integers(0, 2**16))
def test_chunk_equals_naive_for_any_shape_and_chunk_size(b, t, h, kd, vd, chunk, family, seed):
    """Key and value sizes differ, T is ragged, the chunk size is arbitrary: the chunked form is the recurrence."""
    from archdsl.backends.torch.kernels.delta_rule import chunk as dc
    from archdsl.backends.torch.kernels.delta_rule import naive as dn
    from archdsl.backends.torch.kernels.gla import chunk as gc
    from archdsl.backends.torch.kernels.gla import naive as gn
    from archdsl.backends.torch.kernels.simple_gla import chunk as sc
    from archdsl.backends.torch.kernels.simple_gla import naive as sn

    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, t, h, kd, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(b, t, h, vd, generator=gen, dtype=torch.float64)
    h0 = torch.randn(b, h, kd, vd, generator=gen, dtype=torch.float64)
    head = F.logsigmoid(torch.randn(b, t, h, generator=gen, dtype=torch.float64))
    if family == "simple_gla":
        got = sc.chunk_simple_gla(q, k, v, head, initial_state=h0, output_final_state=True, chunk_size=chunk)
        want = sn.naive_simple_gla(q, k, v, head, initial_state=h0, output_final_state=True)
    elif family == "gla":
        gk = F.logsigmoid(torch.randn(b, t, h, kd, generator=gen, dtype=torch.float64))
        if chunk & (chunk - 1):     # the GLA chunk is halved recursively: a power of two
            chunk = 4
        got = gc.chunk_gla(q, k, v, gk, initial_state=h0, output_final_state=True, chunk_size=chunk)
        want = gn.naive_gla(q, k, v, gk, initial_state=h0, output_final_state=True)
    else:
        k = F.normalize(k, dim=-1)
        beta = torch.rand(b, t, h, generator=gen, dtype=torch.float64)
        got = dc.chunk_delta_rule(q, k, v, beta, head, initial_state=h0, output_final_state=True, chunk_size=chunk)
        want = dn.naive_delta_rule(q, k, v, beta, head, initial_state=h0, output_final_state=True)
    assert rel(got[0], want[0]) < 1e-10 and rel(got[1], want[1]) < 1e-10
