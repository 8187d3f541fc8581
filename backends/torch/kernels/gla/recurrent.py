"""Gated linear attention step by step with a state (decoding)."""

from __future__ import annotations

import torch

from archdsl.backends.torch.kernels.common import default_scale, run_steps


def step_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, state: torch.Tensor,
             scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One token: q, k, g [B, H, K], v [B, H, V], state [B, H, K, V] -> (o [B, H, V], state)."""
    state = state * g.exp().unsqueeze(-1) + k.unsqueeze(-1) * v.unsqueeze(-2)
    return scale * (q.unsqueeze(-2) @ state).squeeze(-2), state


def fused_recurrent_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
                        scale: float | None = None, initial_state: torch.Tensor | None = None,
                        output_final_state: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Causal only: [B, T, H, *] inputs through :func:`step_gla`, one token at a time."""
    b, t, h, kd = q.shape
    scale = default_scale(kd, scale)
    state = q.new_zeros(b, h, kd, v.shape[-1]) if initial_state is None else initial_state.to(q.dtype)
    o, state = run_steps(step_gla, [q, k, v, g], state, scale)
    return o, (state if output_final_state else None)
