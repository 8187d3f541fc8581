"""Gated linear attention (a decay per key channel) as chunked Triton kernels, forward and backward (CUDA).

Chunks of BT = 16 tokens; c [B, T, H, K] is the cumulative log-decay inside a chunk (torch computes it, so
autograd maps dc to dg); h[n] is the state before chunk n:

    h[n+1] = diag(exp(c_last)) h[n] + (k * exp(c_last - c))^T v                                  (_fwd_h)
    o      = scale * ((q * exp(c)) h[n] + A v),  A_ij = sum_k q_ik k_jk exp(c_ik - c_jk), j <= i  (_fwd_o)

The intra-chunk decays exp(c_ik - c_jk) are formed as a [BT, BT, K] block, masked by ``where`` before ``exp``
(every exponent <= 0). Backward: dh runs backwards over chunks (_bwd_dh); per chunk (_bwd_main)
dc = q * dq - k * dk, plus on the chunk's last row exp(c_last) sum_v h dh + sum_j k * dk_state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from archdsl.backends.torch.kernels.common import bidirectional, block_size, default_scale, tiles

CHUNK = 16


@triton.jit
def _fwd_h(k, v, c, h, h0, ht, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
           BK: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr):
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
        bk = tl.load(k + p_k, mask=o_k[None, :] < K, other=0.0).to(tl.float32)
        bv = tl.load(v + (i_b * T + rows[:, None]) * H * V + i_h * V + o_v[None, :], mask=o_v[None, :] < V,
                     other=0.0).to(tl.float32)
        cc = tl.load(c + p_k, mask=o_k[None, :] < K, other=0.0)
        c_last = tl.load(c + (i_b * T + n * BT + BT - 1) * H * K + i_h * K + o_k, mask=o_k < K, other=0.0)
        state = state * tl.exp(c_last)[:, None] + tl.dot(tl.trans(bk * tl.exp(c_last[None, :] - cc)), bv)
    if STORE_FINAL:
        tl.store(ht + i_bh * K * V + p_kv, state, mask=m_kv)


@triton.jit
def _fwd_o(q, k, v, c, h, o, scale, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
           BK: tl.constexpr, BV: tl.constexpr):
    n, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    rows = n * BT + tl.arange(0, BT)
    o_k, o_v, i = tl.arange(0, BK), tl.arange(0, BV), tl.arange(0, BT)
    p_k = (i_b * T + rows[:, None]) * H * K + i_h * K + o_k[None, :]
    p_v = (i_b * T + rows[:, None]) * H * V + i_h * V + o_v[None, :]
    bq = tl.load(q + p_k, mask=o_k[None, :] < K, other=0.0).to(tl.float32)
    bk = tl.load(k + p_k, mask=o_k[None, :] < K, other=0.0).to(tl.float32)
    bv = tl.load(v + p_v, mask=o_v[None, :] < V, other=0.0).to(tl.float32)
    cc = tl.load(c + p_k, mask=o_k[None, :] < K, other=0.0)
    bh = tl.load(h + (i_bh * NT + n) * K * V + o_k[:, None] * V + o_v[None, :],
                 mask=(o_k[:, None] < K) & (o_v[None, :] < V), other=0.0)
    causal = (i[:, None] >= i[None, :])[:, :, None]
    decay = tl.exp(tl.where(causal, cc[:, None, :] - cc[None, :, :], float("-inf")))       # [BT, BT, BK]
    scores = tl.sum(bq[:, None, :] * bk[None, :, :] * decay, 2)
    out = (tl.dot(bq * tl.exp(cc), bh) + tl.dot(scores, bv)) * scale
    tl.store(o + p_v, out.to(o.dtype.element_ty), mask=o_v[None, :] < V)


@triton.jit
def _bwd_dh(q, do, c, dh, dht, dh0, scale, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
            BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_k, o_v = tl.arange(0, BK), i_v * BV + tl.arange(0, BV)
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
        bq = tl.load(q + p_k, mask=o_k[None, :] < K, other=0.0).to(tl.float32)
        bdo = tl.load(do + (i_b * T + rows[:, None]) * H * V + i_h * V + o_v[None, :], mask=o_v[None, :] < V,
                      other=0.0).to(tl.float32)
        cc = tl.load(c + p_k, mask=o_k[None, :] < K, other=0.0)
        c_last = tl.load(c + (i_b * T + n * BT + BT - 1) * H * K + i_h * K + o_k, mask=o_k < K, other=0.0)
        grad = grad * tl.exp(c_last)[:, None] + tl.dot(tl.trans(bq * tl.exp(cc) * scale), bdo)
    if STORE_DH0:
        tl.store(dh0 + i_bh * K * V + p_kv, grad, mask=m_kv)


@triton.jit
def _bwd_main(q, k, v, c, h, do, dh, dq, dk, dv, dc, scale, T, NT, H: tl.constexpr, K: tl.constexpr,
              V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
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
    cc = tl.load(c + p_k, mask=m_k, other=0.0)
    c_last = tl.load(c + (i_b * T + n * BT + BT - 1) * H * K + i_h * K + o_k, mask=o_k < K, other=0.0)
    p_kv = (i_bh * NT + n) * K * V + o_k[:, None] * V + o_v[None, :]
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    bh = tl.load(h + p_kv, mask=m_kv, other=0.0)
    bdh = tl.load(dh + p_kv, mask=m_kv, other=0.0)
    causal = i[:, None] >= i[None, :]
    decay = tl.exp(tl.where(causal[:, :, None], cc[:, None, :] - cc[None, :, :], float("-inf")))
    scores = tl.sum(bq[:, None, :] * bk[None, :, :] * decay, 2) * scale
    dscores = tl.where(causal, tl.dot(bdo, tl.trans(bv)), 0.0) * scale
    to_end = tl.exp(c_last[None, :] - cc)
    dk_state = tl.dot(bv, tl.trans(bdh)) * to_end
    bdq = tl.sum(dscores[:, :, None] * bk[None, :, :] * decay, 1) + tl.dot(bdo, tl.trans(bh)) * tl.exp(cc) * scale
    bdk = tl.sum(dscores[:, :, None] * bq[:, None, :] * decay, 0) + dk_state
    bdv = tl.dot(tl.trans(scores), bdo) + tl.dot(bk * to_end, bdh)
    last = tl.exp(c_last) * tl.sum(bh * bdh, 1) + tl.sum(bk * dk_state, 0)                   # [BK]
    bdc = bq * bdq - bk * bdk + tl.where((i == BT - 1)[:, None], last[None, :], 0.0)
    tl.store(dq + p_k, bdq, mask=m_k)
    tl.store(dk + p_k, bdk, mask=m_k)
    tl.store(dv + p_v, bdv, mask=m_v)
    tl.store(dc + p_k, bdc, mask=m_k)


class GLAFunction(torch.autograd.Function):
    """Forward and backward of the chunked kernels; inputs padded to whole chunks, c the in-chunk cumsum of g."""

    @staticmethod
    def forward(ctx, q, k, v, c, h0, scale, output_final_state):
        q, k, v, c = (x.contiguous() for x in (q, k, v, c))
        h0 = None if h0 is None else h0.float().contiguous()
        b, t, h, kd = q.shape
        vd = v.shape[-1]
        nt = t // CHUNK
        bk, bv = block_size(kd), block_size(vd)
        tv, nv = tiles(vd)
        states = torch.empty(b * h, nt, kd, vd, dtype=torch.float32, device=q.device)
        final = torch.empty(b, h, kd, vd, dtype=torch.float32, device=q.device) if output_final_state else None
        _fwd_h[(nv, b * h)](k, v, c, states, h0, final, t, nt, H=h, K=kd, V=vd, BT=CHUNK, BK=bk, BV=tv,
                           HAS_H0=h0 is not None, STORE_FINAL=output_final_state)
        o = torch.empty_like(v)
        _fwd_o[(nt, b * h)](q, k, v, c, states, o, scale, t, nt, H=h, K=kd, V=vd, BT=CHUNK, BK=bk, BV=bv)
        ctx.save_for_backward(q, k, v, c, states)
        ctx.scale, ctx.has_h0 = scale, h0 is not None
        return o, final

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, c, states = ctx.saved_tensors
        b, t, h, kd = q.shape
        vd = v.shape[-1]
        nt = t // CHUNK
        bk, bv = block_size(kd), block_size(vd)
        tv, nv = tiles(vd)
        do = do.contiguous()
        dht = None if dht is None else dht.float().contiguous()
        dstates = torch.empty_like(states)
        dh0 = torch.empty(b, h, kd, vd, dtype=torch.float32, device=q.device) if ctx.has_h0 else None
        _bwd_dh[(nv, b * h)](q, do, c, dstates, dht, dh0, ctx.scale, t, nt, H=h, K=kd, V=vd, BT=CHUNK, BK=bk, BV=tv,
                            HAS_DHT=dht is not None, STORE_DH0=ctx.has_h0)
        f32 = {"dtype": torch.float32, "device": q.device}
        dq, dk, dv, dc = (torch.empty(*x.shape, **f32) for x in (q, k, v, c))
        _bwd_main[(nt, b * h)](q, k, v, c, states, do, dstates, dq, dk, dv, dc, ctx.scale, t, nt, H=h, K=kd, V=vd,
                               BT=CHUNK, BK=bk, BV=bv)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), dc, dh0, None, None


def _causal(q, k, v, g, scale, initial_state, output_final_state):
    b, t, h, kd = q.shape
    pad = (-t) % CHUNK
    if pad:
        q, k, v, g = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v, g))
    n = (t + pad) // CHUNK
    c = g.float().reshape(b, n, CHUNK, h, kd).cumsum(2).reshape(b, n * CHUNK, h, kd)
    o, final = GLAFunction.apply(q, k, v, c, initial_state, scale, output_final_state)
    return o[:, :t], final


def triton_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float | None = None,
               initial_state: torch.Tensor | None = None, output_final_state: bool = False,
               causal: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k, g [B, T, H, K], v [B, T, H, V] (fp32, fp16, bf16) -> (o [B, T, H, V], final state fp32)."""
    if q.dtype == torch.float64:
        raise ValueError("the Triton kernels take float32, float16 or bfloat16; use mode='chunk' for float64")
    scale = default_scale(q.shape[-1], scale)
    if causal:
        return _causal(q, k, v, g, scale, initial_state, output_final_state)
    o = bidirectional(lambda q_, k_, v_, g_: _causal(q_, k_, v_, g_, scale, None, False)[0], q, k, v, g, scale)
    return o, None
