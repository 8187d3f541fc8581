"""The delta rule (DeltaNet) and the gated delta rule (Gated DeltaNet), the reference, token by token.

    S[t] = exp(g[t]) S[t-1]                          (gated form only; g [B, T, H] log-decays)
    u[t] = v[t] - S[t]^T k[t]                        (what the memory gets wrong about k[t])
    S[t] = S[t] + beta[t] k[t] u[t]^T                (= (I - beta k k^T) S + beta k v^T)
    o[t] = scale * q[t]^T S[t]

beta [B, T, H] in (0, 1); DeltaNet L2-normalises q and k (``qk_l2norm`` in the public API).
"""

from __future__ import annotations

import torch

from archdsl.backends.torch.kernels.common import default_scale


def naive_delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor,
                     g: torch.Tensor | None = None, scale: float | None = None,
                     initial_state: torch.Tensor | None = None,
                     output_final_state: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k [B, T, H, K], v [B, T, H, V], beta (and g) [B, T, H] -> (o [B, T, H, V], state [B, H, K, V])."""
    b, t, h, kd = q.shape
    scale = default_scale(kd, scale)
    s = q.new_zeros(b, h, kd, v.shape[-1]) if initial_state is None else initial_state.to(q.dtype)
    out = []
    for i in range(t):
        if g is not None:
            s = s * g[:, i].exp()[..., None, None]
        u = v[:, i] - torch.einsum("bhkv,bhk->bhv", s, k[:, i])
        s = s + torch.einsum("bhk,bhv->bhkv", k[:, i] * beta[:, i, :, None], u)
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, i] * scale, s))
    o = torch.stack(out, 1) if out else v.new_zeros(v.shape).to(q.dtype)
    return o, (s if output_final_state else None)
