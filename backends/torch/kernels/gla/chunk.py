"""Gated linear attention, chunked PyTorch (the CPU form; autograd gives the backward).

With a gate per key channel the intra-chunk scores need the decay per channel:
``A[i, j] = sum_k q[i, k] k[j, k] exp(b[i, k] - b[j, k])`` for j <= i, b the cumulative log-decay inside the
chunk. It is formed explicitly on small chunks (16 tokens), masked by ``where`` before ``exp`` so every
exponent evaluated is <= 0 (the factorised q*exp(b), k*exp(-b) form overflows for strong decays).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archdsl.backends.torch.kernels.common import bidirectional, default_scale
from archdsl.backends.torch.kernels.simple_gla.chunk import _blocks

CHUNK = 16


def _causal(q, k, v, g, initial_state, chunk):
    b, t, h, kd = q.shape
    vd = v.shape[-1]
    c = min(chunk, max(t, 1))
    pad = (-t) % c
    if pad:
        q, k, v, g = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v, g))
    n = (t + pad) // c
    qc, kc, vc, cum = _blocks(q, n, c), _blocks(k, n, c), _blocks(v, n, c), _blocks(g, n, c).cumsum(-2)
    mask = torch.ones(c, c, dtype=torch.bool, device=q.device).tril().unsqueeze(-1)
    decay = torch.where(mask, cum.unsqueeze(-2) - cum.unsqueeze(-3), float("-inf")).exp()    # [B,H,N,C,C,K]
    scores = (qc.unsqueeze(-2) * kc.unsqueeze(-3) * decay).sum(-1)
    last = cum[..., -1:, :]
    contrib = (kc * (last - cum).exp()).transpose(-1, -2) @ vc                                # [B,H,N,K,V]
    carry = last.squeeze(-2).exp()                                                            # [B,H,N,K]
    state = q.new_zeros(b, h, kd, vd) if initial_state is None else initial_state.to(q.dtype)
    prevs = []
    for i in range(n):
        prevs.append(state)
        state = carry[:, :, i, :, None] * state + contrib[:, :, i]
    o = scores @ vc + (qc * cum.exp()) @ torch.stack(prevs, 2)
    return o.movedim(1, 3).reshape(b, n * c, h, vd)[:, :t], state


def chunk_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float | None = None,
              initial_state: torch.Tensor | None = None, output_final_state: bool = False, causal: bool = True,
              chunk_size: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k, g [B, T, H, K], v [B, T, H, V] -> (o [B, T, H, V], final state [B, H, K, V])."""
    scale = default_scale(q.shape[-1], scale)
    if causal:
        o, final = _causal(q * scale, k, v, g, initial_state, chunk_size)
        return o, (final if output_final_state else None)
    o = bidirectional(lambda q_, k_, v_, g_: _causal(q_ * scale, k_, v_, g_, None, chunk_size)[0], q, k, v, g,
                      scale)
    return o, None
