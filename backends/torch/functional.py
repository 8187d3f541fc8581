"""Small functions generated modules call as ``rt.functional.<name>`` (train/eval-dependent regularisers)."""

from __future__ import annotations

import torch


def stochastic_depth(x: torch.Tensor, p: float, mode: str, training: bool) -> torch.Tensor:
    """torchvision.ops.stochastic_depth: keep each row ('row') or the whole batch ('batch') with probability 1-p.

    Survivors are scaled by 1/(1-p); in eval mode, or with p == 0, this is the identity.
    """
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    size = [x.shape[0]] + [1] * (x.ndim - 1) if mode == "row" else [1] * x.ndim
    noise = x.new_empty(size).bernoulli_(keep)
    if keep > 0.0:
        noise.div_(keep)
    return x * noise


def rotary(x: torch.Tensor, offset: int, base: float, interleaved: bool, rotary_dim: int | None) -> torch.Tensor:
    """RoPE on [B, T, H, D] for positions offset .. offset + T - 1 (see archdsl.ops.attention.Rotary).

    The angles are computed in float64 for float64 inputs, else in float32, then cast to x's dtype.
    """
    d = rotary_dim or x.shape[-1]
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    inv_freq = base ** (-torch.arange(0, d, 2, dtype=work, device=x.device) / d)
    t = torch.arange(offset, offset + x.shape[1], dtype=work, device=x.device)
    angles = torch.outer(t, inv_freq)[None, :, None, :]                    # [1, T, 1, d/2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    rot, rest = x[..., :d], x[..., d:]
    if interleaved:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        turned = torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), -1).flatten(-2)
    else:
        x1, x2 = rot.chunk(2, -1)
        turned = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), -1)
    return torch.cat((turned, rest), -1) if rest.shape[-1] else turned
