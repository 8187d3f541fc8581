"""Gated linear attention, chunked PyTorch (the CPU form), with a hand-written chunked backward.

With a gate per key channel the intra-chunk scores need the decay per channel:
``A[i, j] = sum_k q[i, k] k[j, k] exp(b[i, k] - b[j, k])`` for j <= i, b the cumulative log-decay inside the
chunk. The factorised form q*exp(b), k*exp(-b) overflows for strong decays; it is exact and safe, though,
across any boundary r between j and i: ``exp(b[i] - b[j]) = exp(b[i] - r) exp(r - b[j])``, both exponents
<= 0 (b falls). So the C x C chunk (C a power of two) is split in halves recursively: at each level the
lower-left block of every diagonal block (second half's rows, first half's columns) is one batched matrix
product of q * exp(b - r) and k * exp(r - b), r the cumulative decay at the end of the first half; the diagonal
is q[i] . k[i]. Those factors are products of the gates' powers exp(g) (each <= 1) over a segment, built level
by level from the single tokens up (``_scores``): one ``exp2`` per token and channel in all, no difference of
cumulative sums, nothing that overflows; the last level's products are the state's exp(b) and exp(B - b). The
blocks are written into one C x C matrix per chunk, applied to the values by one batched product; no C x C x K
tensor. Across chunks a [K, V] state carries the past, as in ``simple_gla/chunk.py``.

The backward (``torch.autograd.Function``; no second derivatives: a clear error) keeps A and each level's
factors (only when a gradient is needed): with dA = do v^T (lower triangle) the same block products,
transposed, give dq and dk; dv = A^T do plus the state's share; the state gradient runs backwards over the
chunks. The gate's gradient needs no derivative of an exponential: every exponent is a difference b[i] - b[j]
(or b[i] - 0, B - b[j] for the states) that enters multiplied by q[i] and k[j], so ``d b = q * dq - k * dk``,
summed chunk by chunk (``simple_gla.chunk.gate_grad``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archdsl.backends.torch.kernels.common import bidirectional, default_scale
from archdsl.backends.torch.kernels.simple_gla.chunk import (
    LOG2E,
    _state_grads,
    _states,
    blocks_view,
    from_blocks,
    gate_grad,
    no_tokens,
    refuse_double_backward,
    to_blocks,
)

CHUNK = 32          # measured: ~0.95x the forward time of 64 on CPU (one level less, same state work)


def _place(a: torch.Tensor, half: int) -> torch.Tensor:
    """The lower-left ``half x half`` block of every diagonal ``2 half`` block of a [R, C, C], as [R, C/2h, h, h]."""
    r, c = a.shape[0], a.shape[-1]
    blocks = a.view(r, c // (2 * half), 2 * half, c // (2 * half), 2 * half).diagonal(dim1=1, dim2=3)
    return blocks[:, half:, :half].permute(0, 3, 1, 2)


def _scores(q: torch.Tensor, k: torch.Tensor, e: torch.Tensor, c: int,
            keep: bool) -> tuple[torch.Tensor, list, torch.Tensor, torch.Tensor]:
    """Intra-chunk scores A [R, C, C] (lower triangle with diagonal) of rows [R * C, K] from the gates' powers
    e = exp(g); with ``keep``, what the backward needs, one (half, tensors) per level. Also exp(b) and
    exp(b[C-1] - b) per row (b the cumulative gate in the chunk), the state's factors.

    Levels bottom-up (halves 1, 2, 4, ..., C/2): p (inclusive) and r (exclusive, from the right) are running
    products of e inside aligned segments of the level's size, so p on a second half is exp(b - b[end of the
    first half]) and r on a first half exp(b[its end] - b); doubling the segment multiplies p's second halves
    by the first half's total and r's first halves by the second half's. Products of gate powers (all <= 1 for
    forgetting gates): no subtraction, no exponential past e itself, nothing that overflows.
    """
    kd = q.shape[-1]
    a = q.new_zeros(q.shape[0] // c, c, c)
    a.diagonal(dim1=-2, dim2=-1).copy_((q * k).sum(-1).view(-1, c))
    p, r = e, torch.ones_like(e)
    saved: list = []
    half = 1
    while half < c:
        qs, ks, ps, rs = (x.view(-1, 2, half, kd) for x in (q, k, p, r))
        fq, fk = ps[:, 1], rs[:, 0]
        qt = qs[:, 1] * fq
        if half == 1:           # single tokens: the factor is the gate itself; kt = k
            _place(a, 1).copy_((qt * ks[:, 0]).sum(-1).view(a.shape[0], -1, 1, 1))
            if keep:
                saved.append((half, (fq.clone(),)))
        else:
            kt = ks[:, 0] * fk
            _place(a, half).copy_((qt @ kt.transpose(-1, -2)).view(a.shape[0], -1, half, half))
            if keep:
                saved.append((half, (qt, kt, fq.clone(), fk.clone())))
        rs[:, 0].mul_(ps[:, 1, -1:])        # before p's second halves change
        ps[:, 1].mul_(ps[:, 0, -1:])        # (in place: e is not needed after this)
        half *= 2
    return a, saved, p, r


def _score_grads(da: torch.Tensor, q: torch.Tensor, k: torch.Tensor, saved: list, dq: torch.Tensor,
                 dk: torch.Tensor) -> None:
    """Adds to dq, dk (rows [R * C, K]) the gradients through ``_scores`` given dA [R, C, C] (lower triangle),
    all but the diagonal's (q[i] . k[i], no decay: the caller adds it after the gate's gradient, where its two
    shares would cancel only up to rounding)."""
    kd = q.shape[-1]
    for half, level in saved:
        dqs, dks = dq.view(-1, 2, half, kd), dk.view(-1, 2, half, kd)
        dsc = _place(da, half).reshape(-1, half, half)
        if half == 1:
            (fq,) = level
            qs, ks = q.view(-1, 2, 1, kd), k.view(-1, 2, 1, kd)
            w = dsc.view(-1, 1, 1) * fq
            dqs[:, 1].addcmul_(w, ks[:, 0])
            dks[:, 0].addcmul_(w, qs[:, 1])
            continue
        qt, kt, fq, fk = level
        if half == 2:       # 2 x 2 blocks: broadcast products beat tiny matrix products
            dqt = (dsc[..., None] * kt[:, None]).sum(-2)
            dkt = (dsc[..., None] * qt[:, :, None]).sum(-3)
        else:
            dqt, dkt = dsc @ kt, dsc.transpose(-1, -2) @ qt
        dqs[:, 1].addcmul_(dqt, fq)
        dks[:, 0].addcmul_(dkt, fk)


class _ChunkGLA(torch.autograd.Function):
    """On [B, T, H, *] inputs, T a multiple of the chunk c: (o [B, T, H, V], final state [B, H, K, V])."""

    @staticmethod
    def forward(ctx, q, k, v, g, h0, scale, c, keep):
        bsz, t, h, kd = q.shape
        vd, n = v.shape[-1], t // c
        qc, kc, vc = to_blocks(q, n, c, scale), to_blocks(k, n, c), to_blocks(v, n, c)   # [B, H, N, C, *]
        e = to_blocks(g, n, c, LOG2E).exp2_()                                                 # exp(g)
        a, saved, eb, el = _scores(qc.view(-1, kd), kc.view(-1, kd), e.view(-1, kd), c, keep)
        eb, el = eb.view_as(qc), el.view_as(qc)                                                # exp(b), exp(B - b)
        qe, ke = qc * eb, kc * el
        contrib = ke.transpose(-1, -2) @ vc                                                    # [B, H, N, K, V]
        carry = eb[..., -1, :]                                                                 # [B, H, N, K]
        prevs, final = _states(carry, contrib, h0)
        o = (qe.view(-1, c, kd) @ prevs.view(-1, kd, vd)).baddbmm_(a, vc.view(-1, c, vd))
        ctx.set_materialize_grads(False)
        ctx.has_h0, ctx.scale = h0 is not None, scale
        ctx.levels = [(half, len(x)) for half, x in saved]
        ctx.save_for_backward(qc, kc, vc, a, qe, ke, eb, el, carry, prevs,
                              *(x for _, level in saved for x in level))
        return from_blocks(o.view(bsz, h, n, c, vd)), final

    @staticmethod
    def backward(ctx, do, dfinal):
        refuse_double_backward("GLA", do, dfinal)
        q, k, v, a, qe, ke, eb, el, carry, prevs, *rest = ctx.saved_tensors
        saved = []
        for half, size in ctx.levels:
            saved.append((half, tuple(rest[:size])))
            rest = rest[size:]
        bsz, h, n, c, kd = q.shape
        vd = v.shape[-1]
        do = torch.zeros_like(v) if do is None else to_blocks(do, n, c)
        dstate, ds = _state_grads(carry, qe.transpose(-1, -2) @ do, dfinal)
        dstate = dstate.view(-1, kd, vd)                                                       # [BHN, K, V]
        do_, v_ = do.view(-1, c, vd), v.view(-1, c, vd)
        da = (do_ @ v_.transpose(-1, -2)).tril_()                                             # [BHN, C, C]
        dv = (ke.view(-1, c, kd) @ dstate).baddbmm_(a.transpose(-1, -2), do_)
        dq = (do_ @ prevs.view(-1, kd, vd).transpose(-1, -2)).mul_(eb.view(-1, c, kd)).view(-1, kd)
        dks = (v_ @ dstate.transpose(-1, -2)).mul_(el.view(-1, c, kd)).view_as(k)              # state share
        dk = torch.zeros_like(k)
        _score_grads(da, q.view(-1, kd), k.view(-1, kd), saved, dq, dk.view(-1, kd))
        dq = dq.view_as(q)
        # d b (natural units) = q dq - k dk, chunk by chunk (see gate_grad); the diagonal's shares cancel exactly
        carried = carry * (prevs * dstate.view_as(prevs)).sum(-1)
        dg = gate_grad(torch.mul(q, dq).addcmul_(k, dk, value=-1), k * dks, carried)
        diag = da.diagonal(dim1=-2, dim2=-1).view(*q.shape[:-1], 1)
        dq.addcmul_(k, diag)
        dk.add_(dks).addcmul_(q, diag)
        return (blocks_view(dq.mul_(ctx.scale)), blocks_view(dk), blocks_view(dv.view(bsz, h, n, c, vd)),
                blocks_view(dg), (ds if ctx.has_h0 else None), None, None, None)


def _causal(q, k, v, g, initial_state, chunk, scale):
    t = q.shape[1]
    c = chunk if t >= chunk else 1 << max(t - 1, 0).bit_length()
    pad = (-t) % c
    if pad:
        q, k, v, g = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v, g))
    h0 = None if initial_state is None else initial_state.to(q.dtype).contiguous()
    # the level factors are kept only when autograd will record this call (needs_input_grad is True under
    # no_grad as well)
    keep = torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in (q, k, v, g, h0))
    o, state = _ChunkGLA.apply(q, k, v, g, h0, scale, c, keep)
    return (o[:, :t] if pad else o), state


def chunk_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float | None = None,
              initial_state: torch.Tensor | None = None, output_final_state: bool = False, causal: bool = True,
              chunk_size: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k, g [B, T, H, K], v [B, T, H, V] -> (o [B, T, H, V], final state [B, H, K, V])."""
    if chunk_size <= 0 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two, got {chunk_size}")
    scale = default_scale(q.shape[-1], scale)
    if q.shape[1] == 0:         # no tokens: nothing to attend; the state passes through
        o, final = no_tokens(q, v, initial_state)
        return o, (final if causal and output_final_state else None)
    if causal:
        o, final = _causal(q, k, v, g, initial_state, chunk_size, scale)
        return o, (final if output_final_state else None)
    o = bidirectional(lambda q_, k_, v_, g_: _causal(q_, k_, v_, g_, None, chunk_size, scale)[0], q, k, v, g, scale)
    return o, None
