"""The (gated) delta rule step by step with a state (decoding)."""

from __future__ import annotations

import torch

from archdsl.backends.torch.kernels.common import default_scale, run_steps


def step_delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, g: torch.Tensor | None,
                    state: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One token: q, k [B, H, K], v [B, H, V], beta, g [B, H], state [B, H, K, V] -> (o [B, H, V], state)."""
    if g is not None:
        state = state * g.exp()[..., None, None]
    u = v - (k.unsqueeze(-2) @ state).squeeze(-2)
    state = state + (beta.unsqueeze(-1) * k).unsqueeze(-1) * u.unsqueeze(-2)
    return scale * (q.unsqueeze(-2) @ state).squeeze(-2), state


def fused_recurrent_delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor,
                               g: torch.Tensor | None = None, scale: float | None = None,
                               initial_state: torch.Tensor | None = None,
                               output_final_state: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """[B, T, H, *] inputs through :func:`step_delta_rule`, one token at a time."""
    b, t, h, kd = q.shape
    scale = default_scale(kd, scale)
    state = q.new_zeros(b, h, kd, v.shape[-1]) if initial_state is None else initial_state.to(q.dtype)
    o, state = run_steps(step_delta_rule, [q, k, v, beta, g], state, scale)
    return o, (state if output_final_state else None)
