"""Scalar-gated linear attention, the reference: the recurrence written out, token by token.

    S[t] = exp(g[t]) * S[t-1] + k[t] v[t]^T        (state [K, V] per batch and head; g = None: no decay)
    o[t] = scale * q[t]^T S[t]

covers linear attention (any feature map applied to q and k first), RetNet's retention (g = log(gamma_h)),
Lightning Attention (g = -slope_h) and simple GLA (a data-dependent g [B, T, H]). Bidirectional: the causal
recurrence plus the same recurrence run backwards, minus the diagonal counted twice.
"""

from __future__ import annotations

import torch

from archdsl.backends.torch.kernels.common import default_scale, shifted_reverse_gate


def _recurrence(q, k, v, g, scale, state):
    b, t, h, kd = q.shape
    s = q.new_zeros(b, h, kd, v.shape[-1]) if state is None else state.to(q.dtype)
    out = []
    for i in range(t):
        if g is not None:
            s = s * g[:, i].exp()[..., None, None]
        s = s + torch.einsum("bhk,bhv->bhkv", k[:, i], v[:, i])
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, i] * scale, s))
    return torch.stack(out, 1), s


def naive_simple_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None = None,
                     scale: float | None = None, initial_state: torch.Tensor | None = None,
                     output_final_state: bool = False, causal: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k [B, T, H, K], v [B, T, H, V], g [B, T, H] log-decays -> (o [B, T, H, V], final state [B, H, K, V]).

    Computed in the inputs' dtype (pass float64 for a tight reference).
    """
    scale = default_scale(q.shape[-1], scale)
    o, s = _recurrence(q, k, v, g, scale, initial_state)
    if not causal:
        back, _ = _recurrence(q.flip(1), k.flip(1), v.flip(1), shifted_reverse_gate(g), scale, None)
        o = o + back.flip(1) - (q * k).sum(-1, keepdim=True) * v * scale
    return o, (s if output_final_state else None)
