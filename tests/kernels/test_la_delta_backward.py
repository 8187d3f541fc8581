"""The hand-written chunked backward of the (gated) delta rule against autograd through the naive recurrence.

Gradients of q, k, v, beta, the log-decays and the initial state; float64 to 1e-9 relative error (the norm of
the reference floored at 1e-3), float32
against a float64 reference to 1e-3 (strong gates and long chunks lose a few more float32 digits than the
2e-4 of test_la_forms). Ragged T, any chunk size, initial state or not, final state used or not, packed
varlen batches, L2-normalised q/k, decays up to 30 nats per step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from archdsl import kernels
from archdsl.backends.torch.kernels.delta_rule.chunk import chunk_delta_rule, unit_lower_inverse
from archdsl.backends.torch.kernels.delta_rule.naive import naive_delta_rule
from tests.kernels.la_helpers import rel

TOL = {torch.float64: 1e-9, torch.float32: 1e-3}


def _inputs(b, t, h, kd, vd, gate_scale, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    x = {"q": randn(b, t, h, kd), "k": F.normalize(randn(b, t, h, kd), dim=-1), "v": randn(b, t, h, vd),
         "beta": torch.sigmoid(randn(b, t, h)), "g": F.logsigmoid(randn(b, t, h) + 1) * gate_scale,
         "h0": randn(b, h, kd, vd)}
    return {k: v.to(dtype).requires_grad_() for k, v in x.items()}


def _grads(out, state, leaves, seed=1):
    """Gradients of a random linear function of (out, state) (either may be None) for every leaf."""
    gen = torch.Generator().manual_seed(seed)
    loss = torch.zeros((), dtype=torch.float64)
    for y in (out, state):
        if y is not None:
            loss = loss + (y.double() * torch.randn(y.shape, generator=gen, dtype=torch.float64)).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return dict(zip(leaves, grads, strict=True))


def _check(got, want, dtype):
    assert got.keys() == want.keys()
    for name, g in got.items():
        if want[name] is None:         # no path from this input (q when only the final state is used)
            assert g is None or not g.any(), name
            continue
        assert g is not None and torch.isfinite(g).all(), name
        # relative to the reference's norm, floored at 1e-3 (the inputs are O(1)): decays of 30 nats per step leave
        # gate gradients of ~1e-10 that are sums of O(1) terms, exact only to float64's absolute rounding
        err = ((g.double() - want[name]).norm() / (want[name].norm() + 1e-3)).item()
        assert err < TOL[dtype], f"d{name}: {err:.2e}"


@given(b=st.integers(1, 2), t=st.integers(1, 140), h=st.integers(1, 2), kd=st.integers(1, 9),
       vd=st.integers(1, 9), chunk=st.sampled_from([1, 3, 16, 32, 64]), gated=st.booleans(),
       with_h0=st.booleans(), use_o=st.booleans(), use_state=st.booleans(),
       gate_scale=st.sampled_from([0.0, 1.0, 30.0]), seed=st.integers(0, 2**16))
def test_chunk_backward_equals_naive_float64(b, t, h, kd, vd, chunk, gated, with_h0, use_o, use_state,
                                             gate_scale, seed):
    """Any shape, chunk size, T not a multiple of the chunk, initial state or not, either output unused."""
    x = _inputs(b, t, h, kd, vd, gate_scale, seed)
    g, h0 = (x["g"] if gated else None), (x["h0"] if with_h0 else None)
    leaves = {n: x[n] for n in ("q", "k", "v", "beta")} | ({"g": g} if gated else {}) | \
        ({"h0": h0} if with_h0 else {})
    use_o = use_o or not use_state
    o_ref, s_ref = naive_delta_rule(x["q"], x["k"], x["v"], x["beta"], g, initial_state=h0, output_final_state=True)
    want = _grads(o_ref if use_o else None, s_ref if use_state else None, leaves)
    o, s = chunk_delta_rule(x["q"], x["k"], x["v"], x["beta"], g, initial_state=h0, output_final_state=use_state,
                            chunk_size=chunk)
    assert rel(o, o_ref) < 1e-10 and (s is None if not use_state else rel(s, s_ref) < 1e-10)
    _check(_grads(o if use_o else None, s, leaves), want, torch.float64)


@given(fn=st.sampled_from(["delta_rule", "gated_delta_rule"]), lengths=st.lists(st.integers(1, 90), min_size=1,
                                                                                 max_size=3),
       l2norm=st.booleans(), with_h0=st.booleans(), dtype=st.sampled_from([torch.float64, torch.float32]),
       gate_scale=st.sampled_from([1.0, 30.0]), seed=st.integers(0, 2**16))
def test_public_api_backward_varlen_l2norm(fn, lengths, l2norm, with_h0, dtype, gate_scale, seed):
    """Packed varlen batches through the public API, qk L2 norm on or off: chunk grads equal naive grads
    (float32 chunk against the float64 naive reference)."""
    total, n = sum(lengths), len(lengths)
    x = _inputs(1, total, 2, 8, 6, gate_scale, seed)
    x["h0"] = x["h0"].detach()[:1].expand(n, -1, -1, -1).clone().requires_grad_()
    cu = torch.tensor([0, *lengths]).cumsum(0)

    def run(xs, mode):
        gates = (xs["g"], xs["beta"]) if fn == "gated_delta_rule" else (xs["beta"],)
        return getattr(kernels, fn)(xs["q"], xs["k"], xs["v"], *gates, initial_state=xs["h0"] if with_h0 else None,
                                    output_final_state=True, cu_seqlens=cu, mode=mode,
                                    use_qk_l2norm_in_kernel=l2norm)

    names = ["q", "k", "v", "beta"] + (["g"] if fn == "gated_delta_rule" else []) + (["h0"] if with_h0 else [])
    o_ref, s_ref = run(x, "naive")
    want = _grads(o_ref, s_ref, {k: x[k] for k in names})
    y = {k: v.detach().to(dtype).requires_grad_() for k, v in x.items()}
    o, s = run(y, "chunk")
    assert o.dtype == dtype and rel(o, o_ref) < TOL[dtype] and rel(s, s_ref) < TOL[dtype]
    _check(_grads(o, s, {k: y[k] for k in names}), want, dtype)


@given(c=st.sampled_from([1, 2, 5, 8, 16, 64]), seed=st.integers(0, 2**16))
def test_unit_lower_inverse(c, seed):
    """(I + tril_strict(a))^-1 times (I + tril_strict(a)) is I; the diagonal and upper triangle are not read."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(3, c, c, generator=gen, dtype=torch.float64) / c
    m = torch.eye(c, dtype=torch.float64) + a.tril(-1)
    inv = unit_lower_inverse(a)
    assert torch.allclose(inv @ m, torch.eye(c, dtype=torch.float64).expand_as(m), atol=1e-12)
    assert torch.equal(inv, inv.tril())


def test_strong_gates_stay_finite_in_float32():
    """Decays of ~100 nats per step (every exponent the chunk form evaluates is <= 0): finite outputs, states and
    gradients that match the float64 recurrence."""
    x = _inputs(1, 200, 2, 16, 16, 100.0, 3)
    ref = naive_delta_rule(x["q"], x["k"], x["v"], x["beta"], x["g"], initial_state=x["h0"], output_final_state=True)
    leaves = {k: x[k] for k in ("q", "k", "v", "beta", "g", "h0")}
    want = _grads(*ref, leaves)
    y = {k: v.detach().float().requires_grad_() for k, v in x.items()}
    o, s = chunk_delta_rule(y["q"], y["k"], y["v"], y["beta"], y["g"], initial_state=y["h0"], output_final_state=True)
    assert torch.isfinite(o).all() and torch.isfinite(s).all()
    assert rel(o, ref[0]) < 1e-4 and rel(s, ref[1]) < 1e-4
    _check(_grads(o, s, {k: y[k] for k in leaves}), want, torch.float32)


def _saved_bytes(t: int, gated: bool) -> int:
    total = 0

    def pack(x):
        nonlocal total
        total += x.numel() * x.element_size()
        return x

    x = _inputs(1, t, 2, 16, 8, 1.0, 0, torch.float32)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        chunk_delta_rule(x["q"], x["k"], x["v"], x["beta"], x["g"] if gated else None, initial_state=x["h0"],
                         output_final_state=True)
    return total


def test_saved_memory_is_affine_in_t():
    """What the backward keeps grows by the same amount for every further 256 tokens (no T x T tensor)."""
    for gated in (False, True):
        sizes = [_saved_bytes(t, gated) for t in (256, 512, 768)]
        assert sizes[2] - sizes[1] == sizes[1] - sizes[0] > 0
