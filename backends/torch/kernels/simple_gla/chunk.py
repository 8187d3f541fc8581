"""Scalar-gated linear attention, chunked PyTorch (the CPU form), with a hand-written chunked backward.

Inside a chunk of C tokens the output is a masked C x C product; across chunks a [K, V] state carries the past:

    b[i]     = g[chunk start] + ... + g[i]                 (cumulative log-decay inside the chunk)
    o[i]     = scale * (sum_{j <= i in chunk} exp(b[i] - b[j]) (q[i] . k[j]) v[j] + exp(b[i]) q[i]^T S_prev)
    S_next   = exp(b[C-1]) S_prev + sum_j exp(b[C-1] - b[j]) k[j] v[j]^T

Every exponent is <= 0 for a forgetting gate (g <= 0), and the upper triangle is removed by ``where`` before
``exp``, so nothing overflows and no masked entry multiplies an infinity by zero. Powers are taken in base 2
(``exp2`` of the gates times log2(e): ~3x cheaper than ``exp`` on CPU). Without a gate (linear attention) the
scores are masked by ``tril`` and the states are running sums.

The backward (``torch.autograd.Function``; no second derivatives: a clear error) keeps the forward's scores A,
decays and chunk states: with dA = (do v^T) * decay, ``dq = dA k + exp(b) do S_prev^T``,
``dk = dA^T q + exp(B - b) v dS^T``, ``dv = A^T do + (k exp(B - b)) dS``, the state gradient dS running backwards
over the chunks (``dS_prev = exp(B) dS + (q exp(b))^T do``). Every exponent is a difference of cumulative gates
that enters multiplied by q on one side and k on the other, so ``d b = sum_K (q dq - k dk)`` and the gate's
gradient is its reverse cumulative sum inside each chunk, the state's share carried (``gate_grad``): no
derivative of an exponential is taken. Eight matrix products against the forward's four; the gradients are
returned as strided views of the chunk blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archdsl.backends.torch.kernels.common import bidirectional, default_scale

CHUNK = 64


def to_blocks(x: torch.Tensor, n: int, c: int, factor: float | None = None) -> torch.Tensor:
    """[B, N*C, H, *rest] -> [B, H, N, C, *rest] contiguous, times ``factor`` in the same pass."""
    b, _, h = x.shape[:3]
    src = x.reshape(b, n, c, h, *x.shape[3:]).movedim(3, 1)
    out = x.new_empty(src.shape)
    return out.copy_(src) if factor is None else torch.mul(src, factor, out=out)


def blocks_view(x: torch.Tensor) -> torch.Tensor:
    """[B, H, N, C, *rest] -> [B, N*C, H, *rest] as a strided view (no copy; for gradients, whose consumer -
    autograd's accumulation or the next backward - reads any layout)."""
    b, h, n, c = x.shape[:4]
    return x.movedim(1, 3).reshape(b, n * c, h, *x.shape[4:])


def from_blocks(x: torch.Tensor) -> torch.Tensor:
    """[B, H, N, C, *rest] -> [B, N*C, H, *rest], contiguous (one copy)."""
    b, h, n, c = x.shape[:4]
    out = x.new_empty(b, n * c, h, *x.shape[4:])
    out.view(b, n, c, h, *x.shape[4:]).movedim(3, 1).copy_(x)
    return out


LOG2E = 1.4426950408889634


def _states(carry: torch.Tensor | None, contrib: torch.Tensor,
            h0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(state entering each chunk [B, H, N, K, V], final state) of S <- carry * S + contrib over the chunks
    (carry [B, H, N] or [B, H, N, K]; None: no decay). Each step writes into its slot of one buffer."""
    n = contrib.shape[2]
    prevs = torch.empty_like(contrib)
    if h0 is None:
        prevs[:, :, 0].zero_()
    else:
        prevs[:, :, 0].copy_(h0)
    steps = prevs.unbind(2)         # unbind once: indexing [:, :, i] in the loop costs more per chunk
    us = contrib.unbind(2)
    if carry is None:
        for i in range(n - 1):
            torch.add(steps[i], us[i], out=steps[i + 1])
        return prevs, steps[-1] + us[-1]
    a = carry.view(*carry.shape, *([1] * (contrib.ndim - carry.ndim))).unbind(2)
    for i in range(n - 1):
        torch.addcmul(us[i], a[i], steps[i], out=steps[i + 1])
    return prevs, torch.addcmul(us[-1], a[-1], steps[-1])


def _state_grads(carry: torch.Tensor | None, qdo: torch.Tensor,
                 dfinal: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(gradient of the state leaving each chunk [B, H, N, K, V], of the initial state) from the final state's
    gradient and qdo[n] = (q exp(b))^T do of chunk n, backwards over the chunks."""
    n = qdo.shape[2]
    dnext = torch.empty_like(qdo)
    if dfinal is None:
        dnext[:, :, -1].zero_()
    else:
        dnext[:, :, -1].copy_(dfinal)
    steps, us = dnext.unbind(2), qdo.unbind(2)
    if carry is None:
        for i in range(n - 1, 0, -1):
            torch.add(steps[i], us[i], out=steps[i - 1])
        return dnext, steps[0] + us[0]
    a = carry.view(*carry.shape, *([1] * (qdo.ndim - carry.ndim))).unbind(2)
    for i in range(n - 1, 0, -1):
        torch.addcmul(us[i], a[i], steps[i], out=steps[i - 1])
    return dnext, torch.addcmul(us[0], a[0], steps[0])


def no_tokens(q: torch.Tensor, v: torch.Tensor,
              initial_state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(empty o, the state passed through) for T = 0."""
    b, _, h, kd = q.shape
    state = q.new_zeros(b, h, kd, v.shape[-1]) if initial_state is None else initial_state.to(q.dtype)
    return v.new_zeros(v.shape), state


def refuse_double_backward(name: str, *grads: torch.Tensor | None) -> None:
    """RuntimeError when the backward is asked to build a graph (create_graph=True: second derivatives)."""
    if torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in grads):
        raise RuntimeError(f"the chunked {name} backward has no second derivatives (create_graph=True); "
                           f"use mode='naive' for double backward")


def gate_grad(inner: torch.Tensor, keys: torch.Tensor, carried: torch.Tensor) -> torch.Tensor:
    """dg on chunk blocks [B, H, N, C, *] from the chunk-local pieces of the gradient of the cumulative gate b.

    b restarts in every chunk, so dg[t] = sum over positions s >= t of its chunk of d b[s]. Of d b, ``inner``
    = q dq - k dk without the keys' state share; that share (``keys`` = k dk_state) and the end-of-chunk decay
    B = b[C-1] of the state leaving the chunk cancel to ``carried`` (= exp(B) <S_in, dS_out>, [B, H, N, *]) plus
    the keys' share before t: dg[t] = sum_{s >= t} inner[s] + carried + sum_{s < t} keys[s], with no difference
    of large terms (the state's last token undecayed against its own key share): dg stays exact for decays of
    any strength. One cumulative sum: dg = total(inner) + carried - (exclusive cumulative sum of inner - keys).
    """
    total = inner.sum(3, keepdim=True).add_(carried.unsqueeze(3))
    d = inner.sub_(keys)                    # (``inner`` is consumed)
    c = d.shape[3]
    out = torch.empty_like(d)               # exclusive sum, not inclusive minus self: keys[C-1] is O(1)
    out.narrow(3, 0, 1).zero_()
    torch.cumsum(d.narrow(3, 0, c - 1), 3, out=out.narrow(3, 1, c - 1))
    return out.neg_().add_(total)


class _ChunkSimpleGLA(torch.autograd.Function):
    """On [B, T, H, *] inputs, T a multiple of the chunk c, g [B, T, H] or None: (o [B, T, H, V], final state)."""

    @staticmethod
    def forward(ctx, q, k, v, g, h0, scale, c):
        bsz, t, h, kd = q.shape
        vd, n = v.shape[-1], t // c
        qc, kc, vc = to_blocks(q, n, c, scale), to_blocks(k, n, c), to_blocks(v, n, c)     # [B, H, N, C, *]
        qf, kf, vf = qc.view(-1, c, kd), kc.view(-1, c, kd), vc.view(-1, c, vd)
        a = qf @ kf.transpose(-1, -2)                                                          # [BHN, C, C]
        if g is None:
            decay = carry = eb = el = None
            a.tril_()
            qe, ke = qc, kc
        else:
            b = to_blocks(g, n, c, LOG2E).cumsum_(-1)                                         # [B, H, N, C], base 2
            last = b[..., -1:]
            # -inf above the diagonal before exp2 (added in place: as a ``where``, ~1.5x faster)
            above = torch.ones(c, c, dtype=torch.bool, device=q.device).triu(1)
            mask = torch.zeros(c, c, dtype=b.dtype, device=q.device).masked_fill_(above, float("-inf"))
            decay = (b.unsqueeze(-1) - b.unsqueeze(-2)).add_(mask).exp2_().view(-1, c, c)
            a.mul_(decay)
            carry = last.squeeze(-1).exp2()                                                    # [B, H, N]
            eb, el = b.exp2(), (last - b).exp2_()
            qe, ke = qc * eb.unsqueeze(-1), kc * el.unsqueeze(-1)
        contrib = ke.transpose(-1, -2) @ vc                                                    # [B, H, N, K, V]
        prevs, final = _states(carry, contrib, h0)
        o = (qe.view(-1, c, kd) @ prevs.view(-1, kd, vd)).baddbmm_(a, vf)
        ctx.set_materialize_grads(False)
        ctx.has_h0, ctx.scale = h0 is not None, scale
        ctx.save_for_backward(qc, kc, vc, a, qe, ke, decay, carry, eb, el, prevs)
        return from_blocks(o.view(bsz, h, n, c, vd)), final

    @staticmethod
    def backward(ctx, do, dfinal):
        refuse_double_backward("simple GLA / linear attention", do, dfinal)
        q, k, v, a, qe, ke, decay, carry, eb, el, prevs = ctx.saved_tensors
        bsz, h, n, c, kd = q.shape
        vd = v.shape[-1]
        do = torch.zeros_like(v) if do is None else to_blocks(do, n, c)
        dnext, dh0 = _state_grads(carry, qe.transpose(-1, -2) @ do, dfinal)
        dnext = dnext.view(-1, kd, vd)
        do_, v_, q_, k_ = do.view(-1, c, vd), v.view(-1, c, vd), q.view(-1, c, kd), k.view(-1, c, kd)
        da = do_ @ v_.transpose(-1, -2)
        intra = None
        if decay is not None:
            # d b (natural units) = sum_K (q dq - k dk). Its intra-chunk share: row minus column sums of
            # (do v^T) * A without the diagonal (whose two shares cancel exactly); the products go through one
            # scratch buffer (fresh large temporaries cost page faults at long T)
            scratch = q.new_empty(max(a.numel(), q.numel(), prevs.numel()))
            prod = torch.mul(da, a, out=scratch[:a.numel()].view_as(a))
            prod.diagonal(dim1=-2, dim2=-1).zero_()
            intra = prod.sum(-1) - prod.sum(-2)
        da = da.tril_() if decay is None else da.mul_(decay)
        dv = (ke.view(-1, c, kd) @ dnext).baddbmm_(a.transpose(-1, -2), do_)
        dq = do_ @ prevs.view(-1, kd, vd).transpose(-1, -2)
        dk = v_ @ dnext.transpose(-1, -2)
        dg = None
        if intra is not None:
            dq.mul_(eb.view(-1, c, 1))
            dk.mul_(el.view(-1, c, 1))

            def dot(x, y, dims):
                return torch.mul(x, y, out=scratch[:x.numel()].view_as(x)).sum(dims)

            inner = intra.add_(dot(q_, dq, -1))                         # the state shares by dot products
            keys = dot(k_, dk, -1)
            carried = carry * dot(prevs, dnext.view_as(prevs), (-1, -2))
            dg = blocks_view(gate_grad(inner.view(bsz, h, n, c), keys.view(bsz, h, n, c), carried))
        dq = dq.baddbmm_(da, k_, beta=ctx.scale, alpha=ctx.scale).view_as(q)      # gradient of unscaled q
        dk = dk.baddbmm_(da.transpose(-1, -2), q_).view_as(k)
        return (blocks_view(dq), blocks_view(dk), blocks_view(dv.view(bsz, h, n, c, vd)), dg,
                (dh0 if ctx.has_h0 else None), None, None)


def _causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None,
            initial_state: torch.Tensor | None, chunk: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal form on [B, T, H, *]; returns (o, final state)."""
    t = q.shape[1]
    c = min(chunk, max(t, 1))
    pad = (-t) % c
    if pad:
        q, k, v = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v))
        g = None if g is None else F.pad(g, (0, 0, 0, pad))
    h0 = None if initial_state is None else initial_state.to(q.dtype).contiguous()
    o, final = _ChunkSimpleGLA.apply(q, k, v, g, h0, scale, c)
    return (o[:, :t] if pad else o), final


def chunk_simple_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None = None,
                     scale: float | None = None, initial_state: torch.Tensor | None = None,
                     output_final_state: bool = False, causal: bool = True,
                     chunk_size: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k [B, T, H, K], v [B, T, H, V], g [B, T, H] log-decays -> (o [B, T, H, V], final state [B, H, K, V]).

    Computes in the inputs' dtype; callers upcast half precision first.
    """
    scale = default_scale(q.shape[-1], scale)
    if q.shape[1] == 0:         # no tokens: nothing to attend; the state passes through
        o, final = no_tokens(q, v, initial_state)
        return o, (final if causal and output_final_state else None)
    if causal:
        o, final = _causal(q, k, v, g, initial_state, chunk_size, scale)
        return o, (final if output_final_state else None)
    if g is None:       # no decay: every query sees the same sum of k v^T
        return scale * torch.einsum("bthk,bhkv->bthv", q, torch.einsum("bthk,bthv->bhkv", k, v)), None
    o = bidirectional(lambda q_, k_, v_, g_: _causal(q_, k_, v_, g_, None, chunk_size, scale)[0], q, k, v, g, scale)
    return o, None
