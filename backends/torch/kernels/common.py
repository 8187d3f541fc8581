"""Shared pieces of the linear-attention kernels: dtypes, scale, variable-length packing.

Layout everywhere: ``[B, T, H, D]`` (fla's). States are ``[B, H, K, V]``. Gates are log-decays (``<= 0`` for a
forgetting gate); every kernel keeps each exponent it evaluates ``<= 0`` and masks by ``where``.
"""

from __future__ import annotations

import torch


def compute_dtype(*xs: torch.Tensor | None) -> torch.dtype:
    """float64 stays float64; everything else (fp32, fp16, bf16) is computed in float32."""
    return torch.float64 if any(x is not None and x.dtype == torch.float64 for x in xs) else torch.float32


def upcast(x: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``x`` in ``dtype`` (None stays None)."""
    return None if x is None else x.to(dtype)


def default_scale(k_dim: int, scale: float | None) -> float:
    """``scale`` or ``1/sqrt(K)``."""
    return k_dim ** -0.5 if scale is None else float(scale)


def seq_lengths(cu_seqlens: torch.Tensor, total: int) -> list[int]:
    """Lengths of the packed sequences; ValueError when ``cu_seqlens`` is not a valid partition of ``total``."""
    if cu_seqlens.ndim != 1 or cu_seqlens.numel() < 2 or cu_seqlens.is_floating_point():
        raise ValueError(f"cu_seqlens must be a 1-D integer tensor [N+1], got {tuple(cu_seqlens.shape)} "
                         f"{cu_seqlens.dtype}")
    cu = [int(c) for c in cu_seqlens.tolist()]
    if cu[0] != 0 or cu[-1] != total or any(b < a for a, b in zip(cu, cu[1:], strict=False)):
        raise ValueError(f"cu_seqlens must rise from 0 to the packed length {total}, got {cu}")
    return [b - a for a, b in zip(cu, cu[1:], strict=False)]


class Packing:
    """Moves a packed batch ``[1, total, ...]`` to a padded one ``[N, Tmax, ...]`` (zeros after each end) and back.

    Zero keys, values and gates leave every state unchanged, so padding at the end changes no output and no
    final state.
    """

    def __init__(self, cu_seqlens: torch.Tensor, total: int, device: torch.device):
        lengths = seq_lengths(cu_seqlens, total)
        self.count = len(lengths)
        t_max = max(max(lengths), 1)
        starts = torch.tensor([0, *lengths[:-1]], device=device).cumsum(0)
        pos = torch.arange(t_max, device=device)
        self.valid = pos[None, :] < torch.tensor(lengths, device=device)[:, None]           # [N, Tmax]
        self.index = (starts[:, None] + pos[None, :]).clamp(max=max(total - 1, 0))            # [N, Tmax]
        self.positions = pos[None, :].expand(self.count, t_max)                               # 0-based, per sequence
        self.lengths = torch.tensor(lengths, device=device)

    def pad(self, x: torch.Tensor | None) -> torch.Tensor | None:
        """``[1, total, ...]`` -> ``[N, Tmax, ...]`` with zeros past each sequence's end."""
        if x is None:
            return None
        if x.shape[0] != 1:
            raise ValueError(f"with cu_seqlens the batch size must be 1 (sequences packed along T), got "
                             f"{tuple(x.shape)}")
        out = x[0][self.index]
        mask = self.valid.reshape(*self.valid.shape, *([1] * (out.ndim - 2)))
        return torch.where(mask, out, torch.zeros((), dtype=out.dtype, device=out.device))

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, Tmax, ...]`` -> ``[1, total, ...]``."""
        return x[self.valid].unsqueeze(0)


STATE_TILE = 64     # the state is cut into tiles of at most 64 x 64 across the programs of the Triton state kernels


def block_size(n: int) -> int:
    """The Triton block covering ``n`` elements: a power of two, at least 16 (tl.dot's minimum)."""
    return max(16, 1 << (n - 1).bit_length())


def tiles(n: int) -> tuple[int, int]:
    """(tile size, tile count) of a state axis of size ``n``."""
    size = min(STATE_TILE, block_size(n))
    return size, -(-n // size)


def run_steps(step, inputs: list[torch.Tensor | None], state: torch.Tensor,
              scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``step(*inputs[:, t], state, scale) -> (o_t, state)`` token after token over [B, T, H, *] inputs (None stays
    None; inputs[2] is v); returns (o [B, T, H, V], final state)."""
    q, v = inputs[0], inputs[2]
    if q is None or v is None:
        raise ValueError("run_steps needs q (inputs[0]) and v (inputs[2])")
    out = []
    for i in range(q.shape[1]):
        o, state = step(*(None if x is None else x[:, i] for x in inputs), state, scale)
        out.append(o)
    return (torch.stack(out, 1) if out else v.new_zeros(v.shape)), state


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, int, int, int, int]:
    """``B, T, H, K, V`` of ``[B, T, H, K]`` queries and keys and ``[B, T, H, V]`` values (ValueError otherwise)."""
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"q, k, v must be [B, T, H, D], got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape != k.shape or q.shape[:3] != v.shape[:3]:
        raise ValueError(f"q and k must have one shape [B, T, H, K] and v [B, T, H, V], got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    b, t, h, kd = q.shape
    return b, t, h, kd, v.shape[-1]


def check_state(state: torch.Tensor | None, n: int, h: int, kd: int, vd: int) -> None:
    """ValueError unless ``state`` is None or ``[N, H, K, V]``."""
    if state is not None and tuple(state.shape) != (n, h, kd, vd):
        raise ValueError(f"initial_state must be [N, H, K, V] = {[n, h, kd, vd]}, got {list(state.shape)}")


def check_gate(g: torch.Tensor | None, shape: tuple[int, ...], what: str) -> None:
    """ValueError unless ``g`` is None or has ``shape``."""
    if g is not None and tuple(g.shape) != tuple(shape):
        raise ValueError(f"{what} must have shape {list(shape)}, got {list(g.shape)}")


def shifted_reverse_gate(g: torch.Tensor | None, time_dim: int = 1) -> torch.Tensor | None:
    """The gate of the anti-causal pass: reversed in time and shifted by one (``g'[t'] = g[T - t']``, ``g'[0]=0``).

    Running the causal recurrence on reversed inputs with this gate gives sum_{s >= t} exp(g[t+1] + ... + g[s]) ...
    """
    if g is None:
        return None
    rev = g.flip(time_dim)
    zero = torch.zeros_like(rev.narrow(time_dim, 0, 1))
    return torch.cat([zero, rev.narrow(time_dim, 0, rev.shape[time_dim] - 1)], time_dim)


def bidirectional(causal_fn, q, k, v, g, scale: float) -> torch.Tensor:
    """LION-style bidirectional form: causal pass + anti-causal pass (reversed, shifted gate) - the diagonal.

    ``causal_fn(q, k, v, g) -> o`` on ``[B, T, H, D]``; the result is
    ``o[t] = scale * sum_s exp(sum of g strictly after min(s, t) up to max(s, t)) (q[t] . k[s]) v[s]``.
    """
    fwd = causal_fn(q, k, v, g)
    bwd = causal_fn(q.flip(1), k.flip(1), v.flip(1), shifted_reverse_gate(g)).flip(1)
    diag = (q * k).sum(-1, keepdim=True) * v * scale
    return fwd + bwd - diag
