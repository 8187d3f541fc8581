"""Feature maps of linear attention, applied to queries and keys ``[B, T, H, K]`` before the recurrence.

- ``identity``: phi(x) = x
- ``elu1``: phi(x) = elu(x) + 1 (Katharopoulos et al., "Transformers are RNNs")
- ``relu``: phi(x) = max(x, 0)
- ``cosformer``: phi(x_i) = [relu(x_i) cos(pi i / 2M), relu(x_i) sin(pi i / 2M)] for the token at position
  i = 1..T (Qin et al., cosFormer); doubles the key size; M is ``cosformer_len`` or the sequence's length
- ``focused``: FLatten's focused map (Han et al.): r = relu(x) + 1e-6, phi(x) = r^p * ||r|| / ||r^p||,
  norm-preserving, sharper for larger power p
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

FEATURE_MAPS = ("identity", "elu1", "relu", "cosformer", "focused")


def key_size(feature_map: str, k: int) -> int:
    """The key size after the map (cosFormer doubles it)."""
    return 2 * k if feature_map == "cosformer" else k


def apply_feature_map(x: torch.Tensor, feature_map: str, *, focus_power: float = 3.0,
                      positions: torch.Tensor | None = None, length: torch.Tensor | None = None) -> torch.Tensor:
    """phi(x) on ``[B, T, H, K]``; cosFormer reads ``positions`` [B, T] (1-based) and ``length`` [B] (M)."""
    if feature_map == "identity":
        return x
    if feature_map == "elu1":
        return F.elu(x) + 1.0
    if feature_map == "relu":
        return F.relu(x)
    if feature_map == "focused":
        r = F.relu(x) + 1e-6
        rp = r ** focus_power
        return rp * (r.norm(dim=-1, keepdim=True) / rp.norm(dim=-1, keepdim=True))
    if feature_map == "cosformer":
        b, t = x.shape[:2]
        if positions is None:
            positions = torch.arange(1, t + 1, device=x.device).expand(b, t)
        if length is None:
            length = torch.full((b,), t, device=x.device)
        angle = (math.pi / 2) * positions.to(x.dtype) / length.to(x.dtype).clamp(min=1)[:, None]
        r = F.relu(x)
        return torch.cat([r * angle.cos()[:, :, None, None], r * angle.sin()[:, :, None, None]], -1)
    raise ValueError(f"unknown feature map {feature_map!r}; one of {', '.join(FEATURE_MAPS)}")
