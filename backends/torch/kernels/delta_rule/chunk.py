"""The (gated) delta rule, chunked PyTorch in the WY / UT form (the CPU form; autograd gives the backward).

Inside a chunk with start state S0 and cumulative log-decay b (zero without a gate), the beta-scaled
corrections U[j] = beta[j] u[j] solve one unit lower-triangular system

    (I + diag(beta) (tril_strict(K K^T) * exp(b[i] - b[j]))) U = diag(beta) (V - diag(exp(b)) K S0)

so U = Uv - W S0 with Uv, W computed for all chunks at once (``solve_triangular``); then

    O      = scale * (diag(exp(b)) Q S0 + tril(Q K^T * exp(b[i] - b[j])) U)
    S_next = exp(b[C-1]) S0 + (K * exp(b[C-1] - b))^T U

and only the three small products that involve S0 run chunk after chunk. Every exponent is <= 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archdsl.backends.torch.kernels.common import default_scale
from archdsl.backends.torch.kernels.simple_gla.chunk import _blocks

CHUNK = 64


def chunk_delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor,
                     g: torch.Tensor | None = None, scale: float | None = None,
                     initial_state: torch.Tensor | None = None, output_final_state: bool = False,
                     chunk_size: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k [B, T, H, K], v [B, T, H, V], beta (and g) [B, T, H] -> (o [B, T, H, V], state [B, H, K, V])."""
    b, t, h, kd = q.shape
    vd = v.shape[-1]
    scale = default_scale(kd, scale)
    c = min(chunk_size, max(t, 1))
    pad = (-t) % c
    if pad:
        q, k, v = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v))
        beta = F.pad(beta, (0, 0, 0, pad))
        g = None if g is None else F.pad(g, (0, 0, 0, pad))
    n = (t + pad) // c
    qc, kc, vc = _blocks(q * scale, n, c), _blocks(k, n, c), _blocks(v, n, c)
    bc = _blocks(beta, n, c)                                                          # [B, H, N, C]
    ones = torch.ones(c, c, dtype=torch.bool, device=q.device)
    eye = torch.eye(c, dtype=q.dtype, device=q.device)
    kk = kc @ kc.transpose(-1, -2)
    scores = qc @ kc.transpose(-1, -2)
    if g is None:               # no decay: every exp(b[i] - b[j]) is 1
        system = eye + torch.where(ones.tril(-1), bc.unsqueeze(-1) * kk, 0.0)
        rhs_k = bc.unsqueeze(-1) * kc
        scores = torch.where(ones.tril(), scores, 0.0)
        qg, kd_, carry = qc, kc, None
    else:
        cum = _blocks(g, n, c).cumsum(-1)
        diff = cum.unsqueeze(-1) - cum.unsqueeze(-2)
        system = eye + bc.unsqueeze(-1) * kk * torch.where(ones.tril(-1), diff, float("-inf")).exp()
        rhs_k = (bc * cum.exp()).unsqueeze(-1) * kc
        scores = scores * torch.where(ones.tril(), diff, float("-inf")).exp()
        last = cum[..., -1:]
        qg, kd_, carry = qc * cum.exp().unsqueeze(-1), kc * (last - cum).exp().unsqueeze(-1), last.exp()
    # one triangular solve for both right-hand sides: [Uv | W] = M^-1 [diag(beta) V | diag(beta exp(b)) K]
    both = torch.linalg.solve_triangular(system, torch.cat([bc.unsqueeze(-1) * vc, rhs_k], -1), upper=False,
                                         unitriangular=True)
    uv, w = both[..., :vd], both[..., vd:]
    state = q.new_zeros(b, h, kd, vd) if initial_state is None else initial_state.to(q.dtype)
    outs = []
    carries = [None] * n if carry is None else carry[..., None].unbind(2)
    # unbind once: indexing [:, :, i] in the loop would make autograd zero-fill a full-size gradient per chunk
    for uv_i, w_i, qg_i, s_i, kd_i, a in zip(uv.unbind(2), w.unbind(2), qg.unbind(2), scores.unbind(2),
                                             kd_.unbind(2), carries, strict=True):
        u = uv_i - w_i @ state
        outs.append(qg_i @ state + s_i @ u)
        state = kd_i.transpose(-1, -2) @ u + (state if a is None else a * state)
    o = torch.stack(outs, 2).movedim(1, 3).reshape(b, n * c, h, vd)[:, :t]
    return o, (state if output_final_state else None)
