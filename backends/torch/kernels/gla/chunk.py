"""Gated linear attention, chunked PyTorch (the CPU form; autograd gives the backward).

With a gate per key channel the intra-chunk scores need the decay per channel:
``A[i, j] = sum_k q[i, k] k[j, k] exp(b[i, k] - b[j, k])`` for j <= i, b the cumulative log-decay inside the
chunk. The factorised form q*exp(b), k*exp(-b) overflows for strong decays; it is exact and safe, though,
across any boundary r between j and i: ``exp(b[i] - b[j]) = exp(b[i] - r) exp(r - b[j])``, both exponents
<= 0 (b falls). So the C x C chunk (C a power of two) is split in halves recursively: at each level the
lower-left block (second half's rows, first half's columns) is one matrix product of q * exp(b - r) and
k * exp(r - b) with r the cumulative decay at the end of the first half, applied to the first half's values;
the diagonal q[i] . k[i] has no decay. log2(C) levels, one exponential per token and channel on each (on the last, of single tokens, the
factor is the gate itself), and no C x C x K tensor. Across chunks a [K, V] state carries the past, as in ``simple_gla/chunk.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archdsl.backends.torch.kernels.common import bidirectional, default_scale
from archdsl.backends.torch.kernels.simple_gla.chunk import _blocks

CHUNK = 64


def _intra(qc: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor, gc: torch.Tensor, cum: torch.Tensor) -> torch.Tensor:
    """sum_{j <= i in the chunk} exp(b[i] - b[j]) (q[i] . k[j]) v[j] on [B, H, N, C, *] blocks (C a power of 2)."""
    c = qc.shape[-2]
    o = (qc * kc).sum(-1, keepdim=True) * vc
    half = c // 2
    while half >= 2:
        split = (*qc.shape[:-2], c // (2 * half), 2, half)
        qs, ks, cs = qc.view(*split, -1), kc.view(*split, -1), cum.view(*split, -1)
        ref = cs[..., 0, half - 1:half, :]                          # b at the end of each first half
        qa = qs[..., 1, :, :] * (cs[..., 1, :, :] - ref).exp()
        kb = ks[..., 0, :, :] * (ref - cs[..., 0, :, :]).exp()
        v0 = vc.view(*split, -1)[..., 0, :, :]
        if half > 2:
            part = (qa @ kb.transpose(-1, -2)) @ v0
        else:               # 2 x 2 blocks: broadcasting beats many tiny matrix products
            part = ((qa.unsqueeze(-2) * kb.unsqueeze(-3)).sum(-1).unsqueeze(-1) * v0.unsqueeze(-3)).sum(-2)
        o.view(*split, -1)[..., 1, :, :] += part
        half //= 2
    if c > 1:               # single tokens: exp(b[2i+1] - b[2i]) is the gate g[2i+1] itself
        pairs = (*qc.shape[:-2], c // 2, 2, -1)
        qs, ks, gs, vs = qc.view(pairs), kc.view(pairs), gc.view(pairs), vc.view(pairs)
        o.view(pairs)[..., 1, :] += (qs[..., 1, :] * ks[..., 0, :] * gs[..., 1, :].exp()).sum(-1, keepdim=True) \
            * vs[..., 0, :]
    return o


def _causal(q, k, v, g, initial_state, chunk):
    b, t, h, kd = q.shape
    vd = v.shape[-1]
    c = chunk if t >= chunk else 1 << max(t - 1, 0).bit_length()
    pad = (-t) % c
    if pad:
        q, k, v, g = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v, g))
    n = (t + pad) // c
    qc, kc, vc, gc = (_blocks(x, n, c).contiguous() for x in (q, k, v, g))                   # [B,H,N,C,*]
    cum = gc.cumsum(-2)
    o = _intra(qc, kc, vc, gc, cum)
    last = cum[..., -1:, :]
    contrib = (kc * (last - cum).exp()).transpose(-1, -2) @ vc                                # [B,H,N,K,V]
    carry = last.squeeze(-2).exp()                                                            # [B,H,N,K]
    state = q.new_zeros(b, h, kd, vd) if initial_state is None else initial_state.to(q.dtype)
    prevs = []
    for a, u in zip(carry[..., None].unbind(2), contrib.unbind(2), strict=True):    # (unbind: see simple_gla)
        prevs.append(state)
        state = a * state + u
    o = o + (qc * cum.exp()) @ torch.stack(prevs, 2)
    return o.movedim(1, 3).reshape(b, n * c, h, vd)[:, :t], state


def chunk_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float | None = None,
              initial_state: torch.Tensor | None = None, output_final_state: bool = False, causal: bool = True,
              chunk_size: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k, g [B, T, H, K], v [B, T, H, V] -> (o [B, T, H, V], final state [B, H, K, V])."""
    if chunk_size <= 0 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two, got {chunk_size}")
    scale = default_scale(q.shape[-1], scale)
    if causal:
        o, final = _causal(q * scale, k, v, g, initial_state, chunk_size)
        return o, (final if output_final_state else None)
    o = bidirectional(lambda q_, k_, v_, g_: _causal(q_ * scale, k_, v_, g_, None, chunk_size)[0], q, k, v, g,
                      scale)
    return o, None
