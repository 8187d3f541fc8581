"""Scalar-gated linear attention as chunked Triton kernels, forward and hand-written backward (CUDA).

One kernel family covers linear attention under any feature map, RetNet, Lightning Attention and simple GLA.
With c the cumulative log-decay inside a chunk of BT tokens (computed by torch, so autograd maps dc to dg),
h[n] the state before chunk n and dH[n] the gradient flowing into the state after chunk n:

    forward   h[n+1] = exp(c_last) h[n] + (k * exp(c_last - c))^T v                       (_fwd_h)
              o      = scale * ((q * exp(c)) h[n] + (q k^T * D) v),  D = exp(c_i - c_j), j <= i (_fwd_o)
    backward  dH[n-1] = exp(c_last) dH[n] + (q * exp(c) * scale)^T do                      (_bwd_dh)
              dq, dk, dv, dc per chunk from h[n], dH[n]                                     (_bwd_dqkvc)

Every exponent is <= 0 for a forgetting gate; the upper triangle is removed by ``where`` before ``exp``.
Inputs are loaded in their dtype (fp32, fp16, bf16) and computed in fp32 right after loading (the interpreter
gets bf16 arithmetic wrong). Pointer arithmetic only (``tl.make_block_ptr`` is gone in triton 3.9).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from archdsl.backends.torch.kernels.common import bidirectional, block_size, default_scale, tiles


@triton.jit
def _fwd_h(k, v, c, h, h0, ht, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
           BK: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr):
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    p_kv = o_k[:, None] * V + o_v[None, :]
    state = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        state += tl.load(h0 + i_bh * K * V + p_kv, mask=m_kv, other=0.0).to(tl.float32)
    for n in range(NT):
        tl.store(h + (i_bh * NT + n) * K * V + p_kv, state, mask=m_kv)
        rows = n * BT + tl.arange(0, BT)
        kt = tl.load(k + (i_b * T + rows[None, :]) * H * K + i_h * K + o_k[:, None], mask=o_k[:, None] < K,
                     other=0.0).to(tl.float32)                                                    # [BK, BT]
        vv = tl.load(v + (i_b * T + rows[:, None]) * H * V + i_h * V + o_v[None, :], mask=o_v[None, :] < V,
                     other=0.0).to(tl.float32)                                                    # [BT, BV]
        cc = tl.load(c + (i_b * T + rows) * H + i_h)
        c_last = tl.load(c + (i_b * T + n * BT + BT - 1) * H + i_h)
        state = state * tl.exp(c_last) + tl.dot(kt * tl.exp(c_last - cc)[None, :], vv)
    if STORE_FINAL:
        tl.store(ht + i_bh * K * V + p_kv, state, mask=m_kv)


@triton.jit
def _fwd_o(q, k, v, c, h, o, scale, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
           BK: tl.constexpr, BV: tl.constexpr):
    n, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    rows = n * BT + tl.arange(0, BT)
    o_k, o_v = tl.arange(0, BK), tl.arange(0, BV)
    p_q = (i_b * T + rows[:, None]) * H * K + i_h * K + o_k[None, :]
    p_v = (i_b * T + rows[:, None]) * H * V + i_h * V + o_v[None, :]
    bq = tl.load(q + p_q, mask=o_k[None, :] < K, other=0.0).to(tl.float32)
    bk = tl.load(k + p_q, mask=o_k[None, :] < K, other=0.0).to(tl.float32)
    bv = tl.load(v + p_v, mask=o_v[None, :] < V, other=0.0).to(tl.float32)
    cc = tl.load(c + (i_b * T + rows) * H + i_h)
    bh = tl.load(h + (i_bh * NT + n) * K * V + o_k[:, None] * V + o_v[None, :],
                 mask=(o_k[:, None] < K) & (o_v[None, :] < V), other=0.0)
    i = tl.arange(0, BT)
    decay = tl.exp(tl.where(i[:, None] >= i[None, :], cc[:, None] - cc[None, :], float("-inf")))
    scores = tl.dot(bq, tl.trans(bk)) * decay
    out = (tl.dot(bq * tl.exp(cc)[:, None], bh) + tl.dot(scores, bv)) * scale
    tl.store(o + p_v, out.to(o.dtype.element_ty), mask=o_v[None, :] < V)


@triton.jit
def _bwd_dh(q, do, c, dh, dht, dh0, scale, T, NT, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
            BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr):
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    p_kv = o_k[:, None] * V + o_v[None, :]
    grad = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_DHT:
        grad += tl.load(dht + i_bh * K * V + p_kv, mask=m_kv, other=0.0).to(tl.float32)
    for step in range(NT):
        n = NT - 1 - step
        tl.store(dh + (i_bh * NT + n) * K * V + p_kv, grad, mask=m_kv)
        rows = n * BT + tl.arange(0, BT)
        qt = tl.load(q + (i_b * T + rows[None, :]) * H * K + i_h * K + o_k[:, None], mask=o_k[:, None] < K,
                     other=0.0).to(tl.float32)                                                    # [BK, BT]
        bdo = tl.load(do + (i_b * T + rows[:, None]) * H * V + i_h * V + o_v[None, :], mask=o_v[None, :] < V,
                      other=0.0).to(tl.float32)                                                   # [BT, BV]
        cc = tl.load(c + (i_b * T + rows) * H + i_h)
        c_last = tl.load(c + (i_b * T + n * BT + BT - 1) * H + i_h)
        grad = grad * tl.exp(c_last) + tl.dot(qt * (tl.exp(cc) * scale)[None, :], bdo)
    if STORE_DH0:
        tl.store(dh0 + i_bh * K * V + p_kv, grad, mask=m_kv)


@triton.jit
def _bwd_dqkvc(q, k, v, c, h, do, dh, dq, dk, dv, dc, scale, T, NT, H: tl.constexpr, K: tl.constexpr,
               V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    n, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    rows = n * BT + tl.arange(0, BT)
    o_k, o_v = tl.arange(0, BK), tl.arange(0, BV)
    p_q = (i_b * T + rows[:, None]) * H * K + i_h * K + o_k[None, :]
    p_v = (i_b * T + rows[:, None]) * H * V + i_h * V + o_v[None, :]
    m_k, m_v = o_k[None, :] < K, o_v[None, :] < V
    bq = tl.load(q + p_q, mask=m_k, other=0.0).to(tl.float32)
    bk = tl.load(k + p_q, mask=m_k, other=0.0).to(tl.float32)
    bv = tl.load(v + p_v, mask=m_v, other=0.0).to(tl.float32)
    bdo = tl.load(do + p_v, mask=m_v, other=0.0).to(tl.float32)
    p_kv = (i_bh * NT + n) * K * V + o_k[:, None] * V + o_v[None, :]
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    bh = tl.load(h + p_kv, mask=m_kv, other=0.0)
    bdh = tl.load(dh + p_kv, mask=m_kv, other=0.0)
    p_c = (i_b * T + rows) * H + i_h
    cc = tl.load(c + p_c)
    c_last = tl.load(c + (i_b * T + n * BT + BT - 1) * H + i_h)
    i = tl.arange(0, BT)
    decay = tl.exp(tl.where(i[:, None] >= i[None, :], cc[:, None] - cc[None, :], float("-inf"))) * scale
    scores = tl.dot(bq, tl.trans(bk)) * decay                    # scaled, decayed, masked q k^T
    dscores = tl.dot(bdo, tl.trans(bv)) * decay
    to_end = tl.exp(c_last - cc)
    dk_state = tl.dot(bv, tl.trans(bdh)) * to_end[:, None]
    bdq = tl.dot(dscores, bk) + tl.dot(bdo, tl.trans(bh)) * (tl.exp(cc) * scale)[:, None]
    bdk = tl.dot(tl.trans(dscores), bq) + dk_state
    bdv = tl.dot(tl.trans(scores), bdo) + tl.dot(bk * to_end[:, None], bdh)
    bdc = tl.sum(bq * bdq, 1) - tl.sum(bk * bdk, 1)
    last = tl.exp(c_last) * tl.sum(tl.sum(bh * bdh, 1), 0) + tl.sum(tl.sum(bk * dk_state, 1), 0)
    bdc += tl.where(i == BT - 1, last, 0.0)
    tl.store(dq + p_q, bdq, mask=m_k)
    tl.store(dk + p_q, bdk, mask=m_k)
    tl.store(dv + p_v, bdv, mask=m_v)
    tl.store(dc + p_c, bdc)


def simple_gla_fwd(q, k, v, c, scale, h0, output_final_state, chunk):
    """o [B, T, H, V] (v's dtype), the chunk states h [B*H, N, K, V] and the final state (fp32)."""
    b, t, h, kd = q.shape
    vd = v.shape[-1]
    nt = t // chunk
    bk, bv = block_size(kd), block_size(vd)
    (tk, nk), (tv, nv) = tiles(kd), tiles(vd)
    states = q.new_empty(b * h, nt, kd, vd, dtype=torch.float32)
    final = q.new_empty(b, h, kd, vd, dtype=torch.float32) if output_final_state else None
    _fwd_h[(nk, nv, b * h)](k, v, c, states, h0, final, t, nt, H=h, K=kd, V=vd, BT=chunk, BK=tk, BV=tv,
                            HAS_H0=h0 is not None, STORE_FINAL=output_final_state)
    o = torch.empty_like(v)
    _fwd_o[(nt, b * h)](q, k, v, c, states, o, scale, t, nt, H=h, K=kd, V=vd, BT=chunk, BK=bk, BV=bv)
    return o, states, final


def simple_gla_bwd(q, k, v, c, states, do, dht, scale, need_dh0, chunk):
    """dq, dk, dv (fp32), dc [B, T, H] and dh0 [B, H, K, V] (or None)."""
    b, t, h, kd = q.shape
    vd = v.shape[-1]
    nt = t // chunk
    bk, bv = block_size(kd), block_size(vd)
    (tk, nk), (tv, nv) = tiles(kd), tiles(vd)
    dstates = torch.empty_like(states)
    dh0 = q.new_empty(b, h, kd, vd, dtype=torch.float32) if need_dh0 else None
    _bwd_dh[(nk, nv, b * h)](q, do, c, dstates, dht, dh0, scale, t, nt, H=h, K=kd, V=vd, BT=chunk, BK=tk, BV=tv,
                             HAS_DHT=dht is not None, STORE_DH0=need_dh0)
    dq = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    dk, dv = torch.empty_like(dq), torch.empty(v.shape, dtype=torch.float32, device=q.device)
    dc = torch.empty(c.shape, dtype=torch.float32, device=q.device)
    _bwd_dqkvc[(nt, b * h)](q, k, v, c, states, do, dstates, dq, dk, dv, dc, scale, t, nt, H=h, K=kd, V=vd,
                            BT=chunk, BK=bk, BV=bv)
    return dq, dk, dv, dc, dh0


class SimpleGLAFunction(torch.autograd.Function):
    """Forward and backward of the chunked kernels; inputs padded to whole chunks, c the in-chunk cumsum of g."""

    @staticmethod
    def forward(ctx, q, k, v, c, h0, scale, output_final_state, chunk):
        q, k, v, c = (x.contiguous() for x in (q, k, v, c))
        h0 = None if h0 is None else h0.float().contiguous()
        o, states, final = simple_gla_fwd(q, k, v, c, scale, h0, output_final_state, chunk)
        ctx.save_for_backward(q, k, v, c, states)
        ctx.scale, ctx.chunk, ctx.has_h0 = scale, chunk, h0 is not None
        return o, final

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, c, states = ctx.saved_tensors
        dht = None if dht is None else dht.float().contiguous()
        dq, dk, dv, dc, dh0 = simple_gla_bwd(q, k, v, c, states, do.contiguous(), dht, ctx.scale, ctx.has_h0,
                                             ctx.chunk)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), dc, dh0, None, None, None


def _causal(q, k, v, g, scale, initial_state, output_final_state, chunk):
    b, t, h, _ = q.shape
    pad = (-t) % chunk
    if g is None:
        g = q.new_zeros(b, t, h, dtype=torch.float32)
    if pad:
        q, k, v = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v))
        g = F.pad(g, (0, 0, 0, pad))
    n = (t + pad) // chunk
    c = g.float().reshape(b, n, chunk, h).cumsum(2).reshape(b, n * chunk, h)
    o, final = SimpleGLAFunction.apply(q, k, v, c, initial_state, scale, output_final_state, chunk)
    return o[:, :t], final


def triton_simple_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None = None,
                      scale: float | None = None, initial_state: torch.Tensor | None = None,
                      output_final_state: bool = False, causal: bool = True,
                      chunk_size: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k [B, T, H, K], v [B, T, H, V] (fp32, fp16 or bf16), g [B, T, H] log-decays -> (o, final state fp32)."""
    if q.dtype == torch.float64:
        raise ValueError("the Triton kernels take float32, float16 or bfloat16; use mode='chunk' for float64")
    if chunk_size < 16 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two >= 16, got {chunk_size}")
    scale = default_scale(q.shape[-1], scale)
    if causal:
        o, final = _causal(q, k, v, g, scale, initial_state, output_final_state, chunk_size)
        return o, final
    o = bidirectional(lambda q_, k_, v_, g_: _causal(q_, k_, v_, g_, scale, None, False, chunk_size)[0], q, k, v,
                      g, scale)
    return o, None
