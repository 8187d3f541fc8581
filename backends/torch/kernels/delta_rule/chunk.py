"""The (gated) delta rule, chunked PyTorch in the WY / UT form with a hand-written chunked backward (the CPU form).

Inside a chunk of C = 32 tokens with start state S, scaled queries Q and cumulative log-decay b (zero without a
gate; gamma = exp(b), Gamma[i, j] = exp(b[i] - b[j]) for i >= j, a = exp(b[C-1])), the beta-scaled corrections U
solve one unit lower-triangular system

    M U = Y,   M = I + A,   A = tril_strict(diag(beta) (K K^T * Gamma)),   Y = diag(beta) (V - diag(gamma) K S)

so U = Uv - W S with [Uv | W] = M^-1 [diag(beta) V | diag(beta gamma) K] for all chunks at once (M^-1 by block
doubling in batched products, no triangular solve); then

    O      = diag(gamma) Q S + P U,        P = tril(Q K^T * Gamma)
    S_next = a S + Kd^T U,                 Kd = diag(exp(b[C-1] - b)) K

Only U = Uv - W S and S_next run chunk after chunk; O is one batched product over the stacked chunk states.

The backward runs the adjoint recurrence chunk after chunk, newest first (dS' the gradient of S_next):

    dU = P^T dO + Kd dS',      dS = a dS' + (diag(gamma) Q)^T dO - W^T dU

and everything else batched over the chunks: dY = M^-T dU, dA = -tril_strict(dY U^T), dP = tril(dO U^T), and
the gradients of q, k, v, beta and the log-decays from those (the decays' as q . dq - k . dk plus two row
corrections and the chunk-end terms, see the backward). Saved for the backward: the chunked inputs, P,
K K^T * Gamma, M^-1, W, U and the chunk states, nothing recomputed but Gamma; nothing of size T x T. Every exponent
is <= 0 for log-decays <= 0 (entries above the diagonal zeroed before the exp and after it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from archdsl.backends.torch.kernels.common import default_scale

CHUNK = 32


def _to_blocks(x: torch.Tensor, n: int, c: int, times: float | None = None) -> torch.Tensor:
    """[B, N*C, H, *rest] -> [N, B*H, C, *rest] (times ``times`` in the same pass), a new contiguous tensor (never
    a view of ``x``)."""
    b, _, h = x.shape[:3]
    rest = x.shape[3:]
    out = x.new_empty(n, b, h, c, *rest)
    src = x.reshape(b, n, c, h, *rest).permute(1, 0, 3, 2, *range(4, 4 + len(rest)))
    if times is None:
        out.copy_(src)
    else:
        torch.mul(src, times, out=out)
    return out.view(n, b * h, c, *rest)


def _from_blocks(x: torch.Tensor, b: int, h: int, t: int, times: torch.Tensor | float | None = None) -> torch.Tensor:
    """[N, B*H, C, *rest] -> [B, T, H, *rest] (the first ``t`` of N*C positions), times ``times`` (a scalar or a
    tensor of ``x``'s shape, possibly with trailing 1s) in the same pass."""
    n, _, c = x.shape[:3]
    rest = x.shape[3:]
    order = (1, 0, 3, 2, *range(4, 4 + len(rest)))
    out = x.new_empty(b, n, c, h, *rest)
    src = x.view(n, b, h, c, *rest).permute(order)
    if times is None:
        out.copy_(src)
    elif isinstance(times, torch.Tensor):
        torch.mul(src, times.view(n, b, h, c, *times.shape[3:]).permute(order), out=out)
    else:
        torch.mul(src, times, out=out)
    return out.view(b, n * c, h, *rest)[:, :t]


def _decay(cum: torch.Tensor) -> torch.Tensor:
    """Gamma[i, j] = exp(cum[i] - cum[j]) on and below the diagonal, 0 above (the exponents above are zeroed before
    the exp and its results there after: no exponent above 0 is evaluated, and no exp(-inf), which is slow)."""
    return (cum.unsqueeze(-1) - cum.unsqueeze(-2)).tril_().exp_().tril_()


def _diagonal_blocks(x: torch.Tensor, s: int, row: int, col: int) -> torch.Tensor:
    """View of the blocks (2p + row, 2p + col), p = 0..C/(2s)-1, of the s x s tiling of ``x`` [..., C, C]:
    [..., C/(2s), s, s]."""
    m = x.shape[-1] // (2 * s)
    x6 = x.view(*x.shape[:-2], m, 2, s, m, 2, s)
    return torch.diagonal(x6[..., :, row, :, :, col, :], dim1=-4, dim2=-2).movedim(-1, -3)


def unit_lower_inverse(a: torch.Tensor) -> torch.Tensor:
    """(I + tril_strict(a))^-1 for [..., C, C] (the diagonal and upper triangle of ``a`` are not read).

    For a power-of-two C, by doubling: the inverse of [[I + A11, 0], [A21, I + A22]] has the inverses T11, T22 of
    the diagonal blocks on its diagonal and -T22 A21 T11 below (C^3 / 3 multiply-adds in batched products);
    otherwise one triangular solve.
    """
    c = a.shape[-1]
    if c & (c - 1):
        eye = torch.eye(c, dtype=a.dtype, device=a.device).expand_as(a)
        return torch.linalg.solve_triangular(a, eye, upper=False, unitriangular=True)
    t = torch.zeros_like(a)
    t.diagonal(dim1=-2, dim2=-1).fill_(1.0)
    s = 1
    while s < c:
        t21 = _diagonal_blocks(t, s, 1, 1) @ _diagonal_blocks(a, s, 1, 0)
        _diagonal_blocks(t, s, 1, 0).copy_(torch.matmul(t21, _diagonal_blocks(t, s, 0, 0)).neg_())
        s *= 2
    return t


def _acc(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """out += a @ b in place over [..., M, N] (``out`` contiguous); returns ``out``."""
    out.view(-1, *out.shape[-2:]).baddbmm_(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))
    return out


class _ChunkDeltaRule(torch.autograd.Function):
    """(o, final state) of the chunked (gated) delta rule with the chunked backward described in the module."""

    @staticmethod
    def forward(ctx, q, k, v, beta, g, h0, scale: float, c: int):
        b, t, h, kd = q.shape
        vd = v.shape[-1]
        pad = (-t) % c
        if pad:     # zero keys, values, betas and gates after the end leave the state unchanged
            q, k, v = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v))
            beta = F.pad(beta, (0, 0, 0, pad))
            g = None if g is None else F.pad(g, (0, 0, 0, pad))
        n = (t + pad) // c
        qc, kc, vc, bc = (_to_blocks(q, n, c, scale), _to_blocks(k, n, c), _to_blocks(v, n, c),
                          _to_blocks(beta, n, c))                                   # [N, BH, C, *]
        kk = kc @ kc.mT                              # only its strict lower triangle is read (solve and backward)
        p = qc @ kc.mT
        if g is None:
            p.tril_()
            rhs = torch.cat([vc, kc], -1).mul_(bc.unsqueeze(-1))
            cum = kdec = qg = None
        else:
            cum = _to_blocks(g, n, c).cumsum_(-1)                                   # [N, BH, C]
            gam = _decay(cum)
            kk.mul_(gam)
            p.mul_(gam)
            gamma = cum.exp()
            qg = qc * gamma.unsqueeze(-1)
            kdec = kc * (cum[..., -1:] - cum).exp_().unsqueeze(-1)
            rhs = q.new_empty(n, b * h, c, vd + kd)
            torch.mul(vc, bc.unsqueeze(-1), out=rhs[..., :vd])
            torch.mul(kc, (bc * gamma).unsqueeze(-1), out=rhs[..., vd:])
        tinv = unit_lower_inverse(kk * bc.unsqueeze(-1))                          # M^-1
        both = tinv @ rhs
        uv, w = both[..., :vd], both[..., vd:]
        states = q.new_empty(n + 1, b * h, kd, vd)                 # the state before each chunk, and the final one
        if h0 is None:
            states[0].zero_()
        else:
            states[0].copy_(h0.reshape(b * h, kd, vd))
        u = torch.empty_like(uv)
        keys = kc if kdec is None else kdec
        carry = None if cum is None else cum[..., -1].exp().unsqueeze(-1).unsqueeze(-1)   # [N, BH, 1, 1]
        for i in range(n):
            torch.baddbmm(uv[i], w[i], states[i], alpha=-1, out=u[i])
            if carry is None:
                torch.baddbmm(states[i], keys[i].mT, u[i], out=states[i + 1])
            else:
                torch.mul(states[i], carry[i], out=states[i + 1]).baddbmm_(keys[i].mT, u[i])
        o = (qc if qg is None else qg) @ states[:n]
        o.view(-1, c, vd).baddbmm_(p.view(-1, c, c), u.view(-1, c, vd))
        ctx.save_for_backward(qc, kc, vc, bc, cum, p, kk, tinv, w, u, states)
        ctx.shape = (b, t, h, c, h0 is not None, g is not None)
        ctx.scale = scale
        ctx.set_materialize_grads(False)
        return _from_blocks(o, b, h, t), states[n].view(b, h, kd, vd).clone()    # (states is saved: no view out)

    @staticmethod
    @once_differentiable
    def backward(ctx, do, dfinal):
        qc, kc, vc, bc, cum, p, kk, tinv, w, u, states = ctx.saved_tensors
        b, t, h, c, has_h0, gated = ctx.shape
        n, bh, _, kd = kc.shape
        vd = vc.shape[-1]
        if do is None:
            do = vc.new_zeros(b, t, h, vd)
        if t % c:
            do = F.pad(do, (0, 0, 0, 0, 0, (-t) % c))
        do = _to_blocks(do.to(vc.dtype), n, c)
        prev = states[:n]
        if gated:
            gamma = cum.exp()
            kdec_scale = (cum[..., -1:] - cum).exp_()
            qg, kdec = qc * gamma.unsqueeze(-1), kc * kdec_scale.unsqueeze(-1)
            carry = cum[..., -1].exp().unsqueeze(-1).unsqueeze(-1)
        else:
            qg, kdec, carry = qc, kc, None
        # the adjoint recurrence, newest chunk first: dstates[i] is the gradient of states[i]
        du = p.mT @ do
        dstates = vc.new_empty(n + 1, bh, kd, vd)
        torch.matmul(qg.mT, do, out=dstates[:n])
        if dfinal is None:
            dstates[n].zero_()
        else:
            dstates[n].copy_(dfinal.reshape(bh, kd, vd))
        for i in range(n - 1, -1, -1):
            du[i].baddbmm_(kdec[i], dstates[i + 1])
            dstates[i].baddbmm_(w[i].mT, du[i], alpha=-1)
            if carry is None:
                dstates[i].add_(dstates[i + 1])
            else:
                dstates[i].addcmul_(dstates[i + 1], carry[i])
        dnext = dstates[1:]
        # through M U = Y: dY = M^-T dU, dA = -dY U^T (strict lower; its sign is carried by nda = -dA)
        dy = tinv.mT @ du
        nda = (dy @ u.mT).tril_(-1)
        dp = do @ u.mT
        dos = do @ prev.mT                                                          # [N, BH, C, K]
        dys = dy @ prev.mT
        dkd = u @ dnext.mT                                                          # gradient of Kd
        dkk = nda * bc.unsqueeze(-1).neg()                                          # gradient of K K^T * Gamma
        dbeta_a = (nda * kk).sum(-1).neg_()                                         # beta's through A
        kys = (kc * dys).sum(-1)
        if gated:
            gam = _decay(cum)
            dp.mul_(gam)                                                            # upper triangle -> 0
            dkk.mul_(gam)
        else:
            dp.tril_()
        dq = _acc(dos if not gated else dos.mul_(gamma.unsqueeze(-1)), dp, kc)
        dk = dkd if not gated else dkd.mul_(kdec_scale.unsqueeze(-1))
        _acc(_acc(dk, dp.mT, qc), dkk.add_(dkk.mT.contiguous()), kc)
        bgam = bc if not gated else bc * gamma
        dk.addcmul_(dys, bgam.unsqueeze(-1), value=-1.0)
        dbeta = dbeta_a + (dy * vc).sum(-1) - (kys if not gated else gamma * kys)
        dg = None
        if gated:
            # d b[i]: every Gamma[i, j] = exp(b[i] - b[j]) scales a product q_i . k_j or k_i . k_j, every gamma[i]
            # a row q_i or k_i, exp(b[C-1] - b[i]) a row k_i: so db = q . dq - k . dk, corrected for the two
            # terms where k_i enters with +b[i] (through A's rows: 2 beta dbeta_A; through Y: -2 beta gamma k.dYS)
            # and for b[C-1], which besides scales the whole of S_next = exp(b[C-1]) (S + sum_j exp(-b[j]) k_j u_j^T):
            # <S_next, dS_next>
            db = (qc * dq).sum(-1) - (kc * dk).sum(-1) + 2 * bc * dbeta_a - 2 * bgam * kys
            db[..., -1] += torch.linalg.vecdot(states[1:].flatten(-2), dnext.flatten(-2))
            dg = db.flip(-1).cumsum(-1).flip(-1)
        return (_from_blocks(dq, b, h, t, ctx.scale), _from_blocks(dk, b, h, t),
                _from_blocks(dy, b, h, t, bc.unsqueeze(-1)),
                _from_blocks(dbeta, b, h, t), None if dg is None else _from_blocks(dg, b, h, t),
                dstates[0].view(b, h, kd, vd) if has_h0 else None, None, None)


def chunk_delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor,
                     g: torch.Tensor | None = None, scale: float | None = None,
                     initial_state: torch.Tensor | None = None, output_final_state: bool = False,
                     chunk_size: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k [B, T, H, K], v [B, T, H, V], beta (and g) [B, T, H] -> (o [B, T, H, V], state [B, H, K, V])."""
    t, kd = q.shape[1], q.shape[-1]
    c = min(chunk_size, max(t, 1))
    h0 = None if initial_state is None else initial_state.to(q.dtype)
    o, state = _ChunkDeltaRule.apply(q, k, v, beta, g, h0, default_scale(kd, scale), c)
    return o, (state if output_final_state else None)
