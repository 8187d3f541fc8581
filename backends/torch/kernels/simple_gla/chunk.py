"""Scalar-gated linear attention, chunked PyTorch (the CPU form; autograd gives the backward).

Inside a chunk of C tokens the output is a masked C x C product; across chunks a [K, V] state carries the past:

    b[i]     = g[chunk start] + ... + g[i]                 (cumulative log-decay inside the chunk)
    o[i]     = scale * (sum_{j <= i in chunk} exp(b[i] - b[j]) (q[i] . k[j]) v[j] + exp(b[i]) q[i]^T S_prev)
    S_next   = exp(b[C-1]) S_prev + sum_j exp(b[C-1] - b[j]) k[j] v[j]^T

Every exponent is <= 0 for a forgetting gate (g <= 0), and the upper triangle is removed by ``where`` before
``exp``, so nothing overflows and no masked entry multiplies an infinity by zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archdsl.backends.torch.kernels.common import bidirectional, default_scale

CHUNK = 64


def _blocks(x: torch.Tensor, n: int, c: int) -> torch.Tensor:
    """[B, N*C, H, *rest] -> [B, H, N, C, *rest], contiguous (one copy here, not one per matrix product)."""
    b, _, h = x.shape[:3]
    x = x.reshape(b, n, c, h, *x.shape[3:])
    return x.movedim(3, 1).contiguous()


def _causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None,
            initial_state: torch.Tensor | None, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unscaled causal form on [B, T, H, *] (q already scaled); returns (o, final state)."""
    b, t, h, kd = q.shape
    vd = v.shape[-1]
    c = min(chunk, max(t, 1))
    pad = (-t) % c
    if pad:
        q, k, v = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v))
        g = None if g is None else F.pad(g, (0, 0, 0, pad))
    n = (t + pad) // c
    qc, kc, vc = _blocks(q, n, c), _blocks(k, n, c), _blocks(v, n, c)             # [B, H, N, C, D]
    mask = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    h0 = q.new_zeros(b, h, kd, vd) if initial_state is None else initial_state.to(q.dtype)
    scores = qc @ kc.transpose(-1, -2)
    if g is None:
        scores = scores.masked_fill_(~mask, 0.0)          # in place: the product's backward never reads it
        kv = kc.transpose(-1, -2) @ vc                                              # [B, H, N, K, V]
        states = kv.cumsum(2) if initial_state is None else kv.cumsum(2) + h0.unsqueeze(2)
        prev = torch.cat([h0.unsqueeze(2), states[:, :, :-1]], 2)
        o = scores @ vc + qc @ prev
        final = states[:, :, -1]
    else:
        cum = _blocks(g, n, c).cumsum(-1)                                           # [B, H, N, C]
        decay = torch.where(mask, cum.unsqueeze(-1) - cum.unsqueeze(-2), float("-inf")).exp()
        last = cum[..., -1:]
        contrib = (kc * (last - cum).exp().unsqueeze(-1)).transpose(-1, -2) @ vc   # [B, H, N, K, V]
        carry = last.squeeze(-1).exp()                                              # [B, H, N]
        state, prevs = h0, []
        # unbind once: indexing [:, :, i] in the loop would make autograd zero-fill a full-size gradient per chunk
        for a, u in zip(carry[..., None, None].unbind(2), contrib.unbind(2), strict=True):
            prevs.append(state)
            state = a * state + u
        prev = torch.stack(prevs, 2)
        o = (scores * decay) @ vc + (qc * cum.exp().unsqueeze(-1)) @ prev
        final = state
    o = o.movedim(1, 3).reshape(b, n * c, h, vd)[:, :t]
    return o, final


def chunk_simple_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None = None,
                     scale: float | None = None, initial_state: torch.Tensor | None = None,
                     output_final_state: bool = False, causal: bool = True,
                     chunk_size: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k [B, T, H, K], v [B, T, H, V], g [B, T, H] log-decays -> (o [B, T, H, V], final state [B, H, K, V]).

    Computes in the inputs' dtype; callers upcast half precision first.
    """
    scale = default_scale(q.shape[-1], scale)
    if causal:
        o, final = _causal(q * scale, k, v, g, initial_state, chunk_size)
        return o, (final if output_final_state else None)
    if g is None:       # no decay: every query sees the same sum of k v^T
        return scale * torch.einsum("bthk,bhkv->bthv", q, torch.einsum("bthk,bthv->bhkv", k, v)), None
    o = bidirectional(lambda q_, k_, v_, g_: _causal(q_ * scale, k_, v_, g_, None, chunk_size)[0], q, k, v, g,
                      scale)
    return o, None
