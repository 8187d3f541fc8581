"""Random weights that exercise rewrites: BatchNorm statistics far from (0, 1), non-zero biases and scales."""

from __future__ import annotations

import torch


def randomize(module: torch.nn.Module, seed: int = 0, spread: float = 1.0) -> torch.nn.Module:
    """Overwrite every floating parameter and buffer of ``module`` in place, deterministically under ``seed``.

    Running means are drawn from U(-2, 2), running variances from U(0.1, 4) (a BatchNorm near the identity
    hides folding bugs), affine scales from +-U(0.5, 1.5) (signs included), biases from U(-1, 1); other
    weights keep their shape's fan-in scale, times ``spread``.
    """
    g = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return torch.rand(t.shape, generator=g, dtype=torch.float64).mul_(hi - lo).add_(lo).to(t.dtype)

    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_mean":
                t.copy_(uniform(t, -2.0, 2.0))
            elif leaf == "running_var":
                t.copy_(uniform(t, 0.1, 4.0))
            elif t.dim() <= 1 and leaf in ("weight", "gamma", "scale"):
                sign = torch.where(uniform(t, 0, 1) < 0.2, -1.0, 1.0).to(t.dtype)
                t.copy_(uniform(t, 0.5, 1.5) * sign)
            elif t.dim() <= 1:
                t.copy_(uniform(t, -1.0, 1.0))
            else:
                fan_in = max(1, t[0].numel())
                t.copy_(uniform(t, -1.0, 1.0) * (spread * (3.0 / fan_in) ** 0.5))
    return module
