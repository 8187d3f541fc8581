"""Gated linear attention, chunked PyTorch (the CPU form; autograd gives the backward).

With a gate per key channel the intra-chunk scores need the decay per channel:
``A[i, j] = sum_k q[i, k] k[j, k] exp(b[i, k] - b[j, k])`` for j <= i, b the cumulative log-decay inside the
chunk. The factorised form q*exp(b), k*exp(-b) overflows for strong decays, so a chunk (64 tokens) is cut into
sub-chunks of 4 (GLA's secondary chunking):

- between sub-chunks J < I, with r the cumulative decay at the end of sub-chunk I-1,
  ``A_IJ = (q_I * exp(b_I - r)) (k_J * exp(r - b_J))^T``: two matrix products, both exponents <= 0;
- inside a sub-chunk, the [4, 4, K] decays are formed explicitly, masked by ``where`` before ``exp``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archdsl.backends.torch.kernels.common import bidirectional, default_scale
from archdsl.backends.torch.kernels.simple_gla.chunk import _blocks

CHUNK = 64
SUB = 4


def _intra(qc, kc, cum, sub):
    """The masked, decayed C x C scores of every chunk: [B, H, N, C, K] inputs -> [B, H, N, C, C]."""
    c = qc.shape[-2]
    m = c // sub
    shape = (*qc.shape[:-2], m, sub, qc.shape[-1])
    qs, ks, cs = qc.reshape(shape), kc.reshape(shape), cum.reshape(shape)
    mask = torch.ones(sub, sub, dtype=torch.bool, device=qc.device).tril().unsqueeze(-1)
    decay = torch.where(mask, cs.unsqueeze(-2) - cs.unsqueeze(-3), float("-inf")).exp()     # [.., m, s, s, K]
    diag = (qs.unsqueeze(-2) * ks.unsqueeze(-3) * decay).sum(-1)                             # [.., m, s, s]
    rows = []
    for i in range(m):
        parts = []
        if i:
            ref = cum[..., i * sub - 1:i * sub, :]                                           # [.., 1, K]
            left = (qs[..., i, :, :] * (cs[..., i, :, :] - ref).exp()) @ \
                (kc[..., :i * sub, :] * (ref - cum[..., :i * sub, :]).exp()).transpose(-1, -2)
            parts.append(left)
        parts.append(diag[..., i, :, :])
        if i < m - 1:
            parts.append(diag.new_zeros(*diag.shape[:-3], sub, c - (i + 1) * sub))
        rows.append(torch.cat(parts, -1))
    return torch.cat(rows, -2)


def _causal(q, k, v, g, initial_state, chunk, sub=SUB):
    b, t, h, kd = q.shape
    vd = v.shape[-1]
    c = chunk if t >= chunk else max(sub, -(-t // sub) * sub)
    pad = (-t) % c
    if pad:
        q, k, v, g = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v, g))
    n = (t + pad) // c
    qc, kc, vc, cum = _blocks(q, n, c), _blocks(k, n, c), _blocks(v, n, c), _blocks(g, n, c).cumsum(-2)
    scores = _intra(qc, kc, cum, sub)
    last = cum[..., -1:, :]
    contrib = (kc * (last - cum).exp()).transpose(-1, -2) @ vc                                # [B,H,N,K,V]
    carry = last.squeeze(-2).exp()                                                            # [B,H,N,K]
    state = q.new_zeros(b, h, kd, vd) if initial_state is None else initial_state.to(q.dtype)
    prevs = []
    for a, u in zip(carry[..., None].unbind(2), contrib.unbind(2), strict=True):    # (unbind: see simple_gla)
        prevs.append(state)
        state = a * state + u
    o = scores @ vc + (qc * cum.exp()) @ torch.stack(prevs, 2)
    return o.movedim(1, 3).reshape(b, n * c, h, vd)[:, :t], state


def chunk_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float | None = None,
              initial_state: torch.Tensor | None = None, output_final_state: bool = False, causal: bool = True,
              chunk_size: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k, g [B, T, H, K], v [B, T, H, V] -> (o [B, T, H, V], final state [B, H, K, V])."""
    if chunk_size <= 0 or chunk_size % SUB:
        raise ValueError(f"chunk_size must be a positive multiple of {SUB}, got {chunk_size}")
    scale = default_scale(q.shape[-1], scale)
    if causal:
        o, final = _causal(q * scale, k, v, g, initial_state, chunk_size)
        return o, (final if output_final_state else None)
    o = bidirectional(lambda q_, k_, v_, g_: _causal(q_ * scale, k_, v_, g_, None, chunk_size)[0], q, k, v, g,
                      scale)
    return o, None
