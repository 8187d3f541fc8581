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
