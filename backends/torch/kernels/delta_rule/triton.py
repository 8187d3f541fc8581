"""The (gated) delta rule as chunked Triton kernels in the WY / UT form, forward and hand-written backward (CUDA).

Per chunk of BT tokens, c the cumulative log-decay inside the chunk (zero without a gate; computed by torch, so
autograd maps dc to dg), h[n] the state before chunk n:

    M      = I + diag(beta) (tril_strict(K K^T) * exp(c_i - c_j));  A = M^-1 (forward substitution)  (_wy_prepare)
    W      = A diag(beta exp(c)) K,  Uv = A diag(beta) V
    U      = Uv - W h[n];  h[n+1] = exp(c_last) h[n] + (K exp(c_last - c))^T U                      (_fwd_h)
    o      = scale * ((Q exp(c)) h[n] + (Q K^T * D) U)       (the simple-GLA output kernel with v := U)

Backward, dh[n] the gradient of h[n]:
    dU     = scale (Q K^T * D)^T dO + (K exp(c_last - c)) dh[n+1]
    dh[n]  = scale (Q exp(c))^T dO + exp(c_last) dh[n+1] - W^T dU                                    (_bwd_dh)
and per chunk dq, dk, dv, dbeta, dc through the output, the state update and A = M^-1
(dM = -A^T dA A^T)                                                                                  (_bwd_main)

Every exponent is <= 0 for a forgetting gate; inputs are computed in float32 right after loading.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from archdsl.backends.torch.kernels.common import block_size, default_scale, tiles
from archdsl.backends.torch.kernels.simple_gla.triton import _fwd_o


@triton.jit
def _wy_prepare(k, v, beta, c, a, w, uv, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    n, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    rows = n * BT + tl.arange(0, BT)
    o_k, o_v, i = tl.arange(0, BK), tl.arange(0, BV), tl.arange(0, BT)
    p_k = (i_b * T + rows[:, None]) * H * K + i_h * K + o_k[None, :]
    p_v = (i_b * T + rows[:, None]) * H * V + i_h * V + o_v[None, :]
    bk = tl.load(k + p_k, mask=o_k[None, :] < K, other=0.0).to(tl.float32)
    bv = tl.load(v + p_v, mask=o_v[None, :] < V, other=0.0).to(tl.float32)
    bb = tl.load(beta + (i_b * T + rows) * H + i_h).to(tl.float32)
    cc = tl.load(c + (i_b * T + rows) * H + i_h)
    gamma = tl.exp(tl.where(i[:, None] > i[None, :], cc[:, None] - cc[None, :], float("-inf")))
    m = tl.dot(bk, tl.trans(bk)) * gamma * bb[:, None]                        # strictly lower part of M
    inv = tl.where(i[:, None] == i[None, :], 1.0, 0.0)
    for r in range(1, BT):                                                    # row r of A = e_r - M[r, :] A
        m_r = tl.sum(tl.where(i[:, None] == r, m, 0.0), 0)
        row = tl.where(i == r, 1.0, 0.0) - tl.sum(m_r[:, None] * inv, 0)
        inv = tl.where(i[:, None] == r, row[None, :], inv)
    tl.store(a + (i_bh * NT + n) * BT * BT + i[:, None] * BT + i[None, :], inv)
    tl.store(w + p_k, tl.dot(inv, bk * (bb * tl.exp(cc))[:, None]), mask=o_k[None, :] < K)
    tl.store(uv + p_v, tl.dot(inv, bv * bb[:, None]), mask=o_v[None, :] < V)


@triton.jit
def _fwd_h(k, w, uv, c, h, u, h0, ht, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
           BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_k, o_v = tl.arange(0, BK), i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    p_kv = o_k[:, None] * V + o_v[None, :]
    state = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        state += tl.load(h0 + i_bh * K * V + p_kv, mask=m_kv, other=0.0).to(tl.float32)
    for n in range(NT):
        tl.store(h + (i_bh * NT + n) * K * V + p_kv, state, mask=m_kv)
        rows = n * BT + tl.arange(0, BT)
        p_k = (i_b * T + rows[:, None]) * H * K + i_h * K + o_k[None, :]
        p_v = (i_b * T + rows[:, None]) * H * V + i_h * V + o_v[None, :]
        bw = tl.load(w + p_k, mask=o_k[None, :] < K, other=0.0)
        bk = tl.load(k + p_k, mask=o_k[None, :] < K, other=0.0).to(tl.float32)
        bu = tl.load(uv + p_v, mask=o_v[None, :] < V, other=0.0) - tl.dot(bw, state)
        tl.store(u + p_v, bu, mask=o_v[None, :] < V)
        cc = tl.load(c + (i_b * T + rows) * H + i_h)
        c_last = tl.load(c + (i_b * T + n * BT + BT - 1) * H + i_h)
        state = state * tl.exp(c_last) + tl.dot(tl.trans(bk * tl.exp(c_last - cc)[:, None]), bu)
    if STORE_FINAL:
        tl.store(ht + i_bh * K * V + p_kv, state, mask=m_kv)


@triton.jit
def _bwd_dh(q, k, w, c, do, dh, du, dht, dh0, scale, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
            BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_k, o_v, i = tl.arange(0, BK), i_v * BV + tl.arange(0, BV), tl.arange(0, BT)
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    p_kv = o_k[:, None] * V + o_v[None, :]
    grad = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_DHT:
        grad += tl.load(dht + i_bh * K * V + p_kv, mask=m_kv, other=0.0).to(tl.float32)
    for step in range(NT):
        n = NT - 1 - step
        tl.store(dh + (i_bh * NT + n) * K * V + p_kv, grad, mask=m_kv)        # gradient of h[n + 1]
        rows = n * BT + tl.arange(0, BT)
        p_k = (i_b * T + rows[:, None]) * H * K + i_h * K + o_k[None, :]
        p_v = (i_b * T + rows[:, None]) * H * V + i_h * V + o_v[None, :]
        bq = tl.load(q + p_k, mask=o_k[None, :] < K, other=0.0).to(tl.float32)
        bk = tl.load(k + p_k, mask=o_k[None, :] < K, other=0.0).to(tl.float32)
        bw = tl.load(w + p_k, mask=o_k[None, :] < K, other=0.0)
        bdo = tl.load(do + p_v, mask=o_v[None, :] < V, other=0.0).to(tl.float32)
        cc = tl.load(c + (i_b * T + rows) * H + i_h)
        c_last = tl.load(c + (i_b * T + n * BT + BT - 1) * H + i_h)
        decay = tl.exp(tl.where(i[:, None] >= i[None, :], cc[:, None] - cc[None, :], float("-inf"))) * scale
        scores = tl.dot(bq, tl.trans(bk)) * decay
        bdu = tl.dot(tl.trans(scores), bdo) + tl.dot(bk * tl.exp(c_last - cc)[:, None], grad)
        tl.store(du + p_v, bdu, mask=o_v[None, :] < V)
        grad = grad * tl.exp(c_last) + tl.dot(tl.trans(bq * (tl.exp(cc) * scale)[:, None]), bdo) \
            - tl.dot(tl.trans(bw), bdu)
    if STORE_DH0:
        tl.store(dh0 + i_bh * K * V + p_kv, grad, mask=m_kv)


@triton.jit
def _bwd_main(q, k, v, beta, c, a, u, h, do, dh, du, dq, dk, dv, dbeta, dc, scale, T, NT, H: tl.constexpr,
              K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    n, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    rows = n * BT + tl.arange(0, BT)
    o_k, o_v, i = tl.arange(0, BK), tl.arange(0, BV), tl.arange(0, BT)
    p_k = (i_b * T + rows[:, None]) * H * K + i_h * K + o_k[None, :]
    p_v = (i_b * T + rows[:, None]) * H * V + i_h * V + o_v[None, :]
    m_k, m_v = o_k[None, :] < K, o_v[None, :] < V
    bq = tl.load(q + p_k, mask=m_k, other=0.0).to(tl.float32)
    bk = tl.load(k + p_k, mask=m_k, other=0.0).to(tl.float32)
    bv = tl.load(v + p_v, mask=m_v, other=0.0).to(tl.float32)
    bdo = tl.load(do + p_v, mask=m_v, other=0.0).to(tl.float32)
    bu = tl.load(u + p_v, mask=m_v, other=0.0)
    bdu = tl.load(du + p_v, mask=m_v, other=0.0)
    p_t = (i_b * T + rows) * H + i_h
    bb = tl.load(beta + p_t).to(tl.float32)
    cc = tl.load(c + p_t)
    c_last = tl.load(c + (i_b * T + n * BT + BT - 1) * H + i_h)
    p_kv = (i_bh * NT + n) * K * V + o_k[:, None] * V + o_v[None, :]
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    bh = tl.load(h + p_kv, mask=m_kv, other=0.0)
    bdh = tl.load(dh + p_kv, mask=m_kv, other=0.0)                         # gradient of h[n + 1]
    inv = tl.load(a + (i_bh * NT + n) * BT * BT + i[:, None] * BT + i[None, :])
    ec = tl.exp(cc)
    to_end = tl.exp(c_last - cc)
    # the output: o = scale ((q e^c) h + (q k^T * D) U)
    decay = tl.exp(tl.where(i[:, None] >= i[None, :], cc[:, None] - cc[None, :], float("-inf"))) * scale
    dscores = tl.dot(bdo, tl.trans(bu)) * decay
    bdq = tl.dot(dscores, bk) + tl.dot(bdo, tl.trans(bh)) * (ec * scale)[:, None]
    dk_state = tl.dot(bu, tl.trans(bdh)) * to_end[:, None]
    bdk = tl.dot(tl.trans(dscores), bq) + dk_state
    bdc = tl.sum(bq * bdq, 1) - tl.sum(bk * bdk, 1)
    last = tl.exp(c_last) * tl.sum(tl.sum(bh * bdh, 1), 0) + tl.sum(tl.sum(bk * dk_state, 1), 0)
    bdc += tl.where(i == BT - 1, last, 0.0)
    # U = Uv - W h with W = A diag(beta e^c) K and Uv = A diag(beta) V
    dw = -tl.dot(bdu, tl.trans(bh))                                           # [BT, K]
    rw = bk * (bb * ec)[:, None]
    rv = bv * bb[:, None]
    dinv = tl.dot(dw, tl.trans(rw)) + tl.dot(bdu, tl.trans(rv))
    drw = tl.dot(tl.trans(inv), dw)
    drv = tl.dot(tl.trans(inv), bdu)
    bdk += drw * (bb * ec)[:, None]
    rw_k = tl.sum(drw * bk, 1)
    bdb = rw_k * ec + tl.sum(drv * bv, 1)
    bdc += rw_k * bb * ec
    bdv = drv * bb[:, None]
    # A = M^-1 with M = I + diag(beta) (tril_strict(K K^T) * Gamma): dM = -A^T dA A^T on the strict lower part
    dm = -tl.dot(tl.dot(tl.trans(inv), dinv), tl.trans(inv))
    gamma = tl.exp(tl.where(i[:, None] > i[None, :], cc[:, None] - cc[None, :], float("-inf")))
    kk = tl.dot(bk, tl.trans(bk))
    dm = tl.where(i[:, None] > i[None, :], dm, 0.0)
    gk = dm * gamma * bb[:, None]                                             # d(k_i . k_j)
    bdk += tl.dot(gk, bk) + tl.dot(tl.trans(gk), bk)
    bdb += tl.sum(dm * gamma * kk, 1)
    e = gk * kk                                                               # d Gamma_ij * Gamma_ij
    bdc += tl.sum(e, 1) - tl.sum(e, 0)
    tl.store(dq + p_k, bdq, mask=m_k)
    tl.store(dk + p_k, bdk, mask=m_k)
    tl.store(dv + p_v, bdv, mask=m_v)
    tl.store(dbeta + p_t, bdb)
    tl.store(dc + p_t, bdc)


def delta_rule_fwd(q, k, v, beta, c, scale, h0, output_final_state, chunk):
    """o (v's dtype), and for the backward A, W, U, the chunk states h; the final state (fp32) or None."""
    b, t, h, kd = q.shape
    vd = v.shape[-1]
    nt = t // chunk
    bk, bv = block_size(kd), block_size(vd)
    tv, nv = tiles(vd)
    f32 = {"dtype": torch.float32, "device": q.device}
    a = torch.empty(b * h, nt, chunk, chunk, **f32)
    w, uv, u = torch.empty(b, t, h, kd, **f32), torch.empty(b, t, h, vd, **f32), torch.empty(b, t, h, vd, **f32)
    _wy_prepare[(nt, b * h)](k, v, beta, c, a, w, uv, t, nt, H=h, K=kd, V=vd, BT=chunk, BK=bk, BV=bv)
    states = torch.empty(b * h, nt, kd, vd, **f32)
    final = torch.empty(b, h, kd, vd, **f32) if output_final_state else None
    _fwd_h[(nv, b * h)](k, w, uv, c, states, u, h0, final, t, nt, H=h, K=kd, V=vd, BT=chunk, BK=bk, BV=tv,
                       HAS_H0=h0 is not None, STORE_FINAL=output_final_state)
    o = torch.empty_like(v)
    _fwd_o[(nt, b * h)](q, k, u, c, states, o, scale, t, nt, H=h, K=kd, V=vd, BT=chunk, BK=bk, BV=bv)
    return o, (a, w, u, states), final


def delta_rule_bwd(q, k, v, beta, c, saved, do, dht, scale, need_dh0, chunk):
    """dq, dk, dv, dbeta, dc (fp32) and dh0 (or None)."""
    a, w, u, states = saved
    b, t, h, kd = q.shape
    vd = v.shape[-1]
    nt = t // chunk
    bk, bv = block_size(kd), block_size(vd)
    tv, nv = tiles(vd)
    f32 = {"dtype": torch.float32, "device": q.device}
    dstates, du = torch.empty_like(states), torch.empty(b, t, h, vd, **f32)
    dh0 = torch.empty(b, h, kd, vd, **f32) if need_dh0 else None
    _bwd_dh[(nv, b * h)](q, k, w, c, do, dstates, du, dht, dh0, scale, t, nt, H=h, K=kd, V=vd, BT=chunk, BK=bk,
                         BV=tv, HAS_DHT=dht is not None, STORE_DH0=need_dh0)
    dq, dk, dv = torch.empty(b, t, h, kd, **f32), torch.empty(b, t, h, kd, **f32), torch.empty(b, t, h, vd, **f32)
    dbeta, dc = torch.empty(b, t, h, **f32), torch.empty(b, t, h, **f32)
    _bwd_main[(nt, b * h)](q, k, v, beta, c, a, u, states, do, dstates, du, dq, dk, dv, dbeta, dc, scale, t, nt,
                           H=h, K=kd, V=vd, BT=chunk, BK=bk, BV=bv)
    return dq, dk, dv, dbeta, dc, dh0


class DeltaRuleFunction(torch.autograd.Function):
    """Forward and backward of the chunked kernels; inputs padded to whole chunks, c the in-chunk cumsum of g."""

    @staticmethod
    def forward(ctx, q, k, v, beta, c, h0, scale, output_final_state, chunk):
        q, k, v, beta, c = (x.contiguous() for x in (q, k, v, beta, c))
        h0 = None if h0 is None else h0.float().contiguous()
        o, saved, final = delta_rule_fwd(q, k, v, beta, c, scale, h0, output_final_state, chunk)
        ctx.save_for_backward(q, k, v, beta, c, *saved)
        ctx.scale, ctx.chunk, ctx.has_h0 = scale, chunk, h0 is not None
        return o, final

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, beta, c, *saved = ctx.saved_tensors
        dht = None if dht is None else dht.float().contiguous()
        dq, dk, dv, dbeta, dc, dh0 = delta_rule_bwd(q, k, v, beta, c, saved, do.contiguous(), dht, ctx.scale,
                                                    ctx.has_h0, ctx.chunk)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), dbeta.to(beta.dtype), dc, dh0, None, None, None


def triton_delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor,
                      g: torch.Tensor | None = None, scale: float | None = None,
                      initial_state: torch.Tensor | None = None, output_final_state: bool = False,
                      chunk_size: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k [B, T, H, K], v [B, T, H, V] (fp32, fp16, bf16), beta (and g) [B, T, H] -> (o, final state fp32)."""
    if q.dtype == torch.float64:
        raise ValueError("the Triton kernels take float32, float16 or bfloat16; use mode='chunk' for float64")
    if chunk_size < 16 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two >= 16, got {chunk_size}")
    b, t, h, _ = q.shape
    scale = default_scale(q.shape[-1], scale)
    pad = (-t) % chunk_size
    if g is None:
        g = q.new_zeros(b, t, h, dtype=torch.float32)
    if pad:
        q, k, v = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v))
        beta, g = F.pad(beta, (0, 0, 0, pad)), F.pad(g, (0, 0, 0, pad))
    n = (t + pad) // chunk_size
    c = g.float().reshape(b, n, chunk_size, h).cumsum(2).reshape(b, n * chunk_size, h)
    o, final = DeltaRuleFunction.apply(q, k, v, beta.float(), c, initial_state, scale, output_final_state,
                                       chunk_size)
    return o[:, :t], final
