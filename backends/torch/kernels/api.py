"""The public functional API, with flash-linear-attention's argument names and order.

Each function takes ``[B, T, H, D]`` tensors and returns ``(o, final_state)``::

    o, state = linear_attn(q, k, v, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None)

``mode`` picks the form: ``"auto"`` (Triton on CUDA tensors when triton is installed, chunked PyTorch
otherwise), ``"chunk"``, ``"recurrent"`` (alias ``"fused_recurrent"``; causal only), ``"naive"`` or
``"triton"``. Half-precision inputs are computed in float32; the output has v's dtype, the state is float32
(float64 for float64 inputs). ``cu_seqlens`` [N+1] packs N sequences along T of a batch of one; the
states are then [N, H, K, V]. ``causal=False`` is the bidirectional form (no state in or out).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from archdsl.backends.torch.kernels.common import (
    Packing,
    check_gate,
    check_qkv,
    check_state,
    compute_dtype,
    default_scale,
    upcast,
)
from archdsl.backends.torch.kernels.delta_rule.chunk import chunk_delta_rule
from archdsl.backends.torch.kernels.delta_rule.naive import naive_delta_rule
from archdsl.backends.torch.kernels.delta_rule.recurrent import fused_recurrent_delta_rule
from archdsl.backends.torch.kernels.feature_maps import FEATURE_MAPS, apply_feature_map
from archdsl.backends.torch.kernels.gla.chunk import chunk_gla
from archdsl.backends.torch.kernels.gla.naive import naive_gla
from archdsl.backends.torch.kernels.gla.recurrent import fused_recurrent_gla
from archdsl.backends.torch.kernels.simple_gla.chunk import chunk_simple_gla
from archdsl.backends.torch.kernels.simple_gla.naive import naive_simple_gla
from archdsl.backends.torch.kernels.simple_gla.recurrent import fused_recurrent_simple_gla

MODES = ("auto", "chunk", "recurrent", "fused_recurrent", "naive", "triton")


@functools.cache
def triton_available() -> bool:
    """True when the ``triton`` package can be imported (the ``kernels`` extra)."""
    return importlib.util.find_spec("triton") is not None


def _triton_simple_gla(*args, **kwargs):
    from archdsl.backends.torch.kernels.simple_gla.triton import triton_simple_gla

    return triton_simple_gla(*args, **kwargs)


def _triton_gla(*args, **kwargs):
    from archdsl.backends.torch.kernels.gla.triton import triton_gla

    return triton_gla(*args, **kwargs)


def _triton_delta_rule(*args, **kwargs):
    from archdsl.backends.torch.kernels.delta_rule.triton import triton_delta_rule

    return triton_delta_rule(*args, **kwargs)


def _causal_only(fn):
    def run(*args, causal: bool = True, **kwargs):
        if not causal:
            raise ValueError("the recurrent form is causal only; use mode='chunk' for causal=False")
        return fn(*args, **kwargs)
    return run


_FORMS = {
    "simple_gla": {"naive": naive_simple_gla, "chunk": chunk_simple_gla,
                   "recurrent": _causal_only(fused_recurrent_simple_gla), "triton": _triton_simple_gla},
    "gla": {"naive": naive_gla, "chunk": chunk_gla, "recurrent": _causal_only(fused_recurrent_gla),
            "triton": _triton_gla},
    "delta_rule": {"naive": naive_delta_rule, "chunk": chunk_delta_rule, "recurrent": fused_recurrent_delta_rule,
                   "triton": _triton_delta_rule},
}


def _form(family: str, mode: str, device: torch.device, dtype: torch.dtype) -> tuple[str, Callable[..., tuple]]:
    """(form name, function) for ``mode``; ``auto`` is Triton on CUDA (fp32/fp16/bf16) when installed, else chunk."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    forms = _FORMS[family]
    if mode == "auto":
        mode = "triton" if device.type == "cuda" and dtype != torch.float64 and triton_available() else "chunk"
    mode = "recurrent" if mode == "fused_recurrent" else mode
    if mode == "triton" and not triton_available():
        raise ValueError("mode='triton' needs the triton package: pip install 'archdsl[kernels]'")
    return mode, forms[mode]


def _run(family: str, q, k, v, gates: dict, *, scale, initial_state, output_final_state, cu_seqlens, mode,
         causal=True, prepare=None, wrap=None, extra_v=0):
    """Checks, upcast, packing, the chosen form, unpacking.

    ``prepare(q, k, v, pack)`` maps the (upcast, padded) inputs first; ``wrap(form, fn)`` wraps the form's
    function (its state has ``extra_v`` more value columns).
    """
    b, t, h, kd, vd = check_qkv(q, k, v)
    if not causal and (initial_state is not None or output_final_state):
        raise ValueError("bidirectional (causal=False) attention has no recurrent state: pass no initial_state "
                         "and output_final_state=False")
    out_dtype = v.dtype
    form, fn = _form(family, mode, q.device, q.dtype)
    dt = compute_dtype(q, k, v)
    if form != "triton":        # the Triton kernels load half precision and compute in float32 themselves
        q, k, v = upcast(q, dt), upcast(k, dt), upcast(v, dt)
    gates = {name: upcast(x, dt) for name, x in gates.items()}
    pack = None
    if cu_seqlens is not None:
        pack = Packing(cu_seqlens, t, q.device)
        q, k, v = pack.pad(q), pack.pad(k), pack.pad(v)
        gates = {name: pack.pad(x) for name, x in gates.items()}
    if prepare is not None:
        q, k, v = prepare(q, k, v, pack)
    n = pack.count if pack is not None else b
    check_state(initial_state, n, h, q.shape[-1], v.shape[-1] + extra_v)
    if wrap is not None:
        fn = wrap(form, fn)
    if q.shape[1] == 0:         # no tokens: nothing to attend; the state passes through
        state = None
        if output_final_state:
            state = (q.new_zeros(n, h, q.shape[-1], v.shape[-1] + extra_v, dtype=dt) if initial_state is None
                     else initial_state.to(dt))
        o = v.new_zeros(*v.shape[:3], vd)
        return (pack.unpad(o) if pack is not None else o).to(out_dtype), state
    o, state = fn(q, k, v, *gates.values(), scale=scale, initial_state=upcast(initial_state, dt),
                  output_final_state=output_final_state, **({} if family == "delta_rule" else {"causal": causal}))
    if pack is not None:
        o = pack.unpad(o)
    return o.to(out_dtype), state


def simple_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None = None,
               scale: float | None = None, initial_state: torch.Tensor | None = None,
               output_final_state: bool = False, cu_seqlens: torch.Tensor | None = None, mode: str = "auto",
               causal: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Simple GLA: a data-dependent scalar log-decay g [B, T, H] per head (``S = exp(g) S + k v^T``)."""
    check_gate(g, q.shape[:3], "g")
    return _run("simple_gla", q, k, v, {"g": g}, scale=scale, initial_state=initial_state,
                output_final_state=output_final_state, cu_seqlens=cu_seqlens, mode=mode, causal=causal)


def retention_decay(num_heads: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """RetNet's per-head log-decay: log(1 - 2^(-5 - h)), h = 0..H-1 (computed in float64, returned in ``dtype``)."""
    return torch.log1p(-(2.0 ** (-5.0 - torch.arange(num_heads, dtype=torch.float64)))).to(dtype)


def lightning_decay(num_heads: int, layer_idx: int, num_layers: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Lightning Attention's per-head log-decay for one layer: -(8 / H) (1 - layer_idx / num_layers) h."""
    return -(8 / num_heads * (1 - layer_idx / num_layers)) * torch.arange(num_heads, dtype=dtype)


def _fixed_decay(q: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    return decay.to(device=q.device).expand(*q.shape[:3])


def retention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None,
              initial_state: torch.Tensor | None = None, output_final_state: bool = False,
              cu_seqlens: torch.Tensor | None = None, mode: str = "auto",
              causal: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """RetNet's retention: a fixed decay gamma_h = 1 - 2^(-5-h) per head."""
    g = _fixed_decay(q, retention_decay(q.shape[2], compute_dtype(q)))
    return simple_gla(q, k, v, g, scale, initial_state, output_final_state, cu_seqlens, mode, causal)


def lightning_attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer_idx: int, num_layers: int,
                   scale: float | None = None, initial_state: torch.Tensor | None = None,
                   output_final_state: bool = False, cu_seqlens: torch.Tensor | None = None, mode: str = "auto",
                   causal: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Lightning Attention-2: a fixed per-head decay whose schedule depends on the layer's depth."""
    if not 0 <= layer_idx < num_layers:
        raise ValueError(f"layer_idx must be in [0, num_layers), got {layer_idx} of {num_layers}")
    g = _fixed_decay(q, lightning_decay(q.shape[2], layer_idx, num_layers, compute_dtype(q)))
    return simple_gla(q, k, v, g, scale, initial_state, output_final_state, cu_seqlens, mode, causal)


def linear_attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None,
                initial_state: torch.Tensor | None = None, output_final_state: bool = False,
                normalize: bool = True, cu_seqlens: torch.Tensor | None = None, mode: str = "auto",
                causal: bool = True, feature_map: str = "identity", focus_power: float = 3.0,
                cosformer_len: int | None = None, eps: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Linear attention: phi(q), phi(k) by ``feature_map``; ``normalize`` divides by phi(q) . sum phi(k) + eps.

    With ``normalize`` the state is [N, H, K, V + 1], its last column the key sum, so splitting a sequence and
    resuming is exact. The Triton form takes the key sum by a cumulative sum; the others carry it as an extra
    value column of ones (two derivations, checked against each other; on CPU the column is ~7% faster than
    the separate key sum for the chunked form, its backward included).
    """
    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"unknown feature map {feature_map!r}; one of {', '.join(FEATURE_MAPS)}")
    scale = default_scale(q.shape[-1], scale)

    def prepare(q_, k_, v_, pack):
        positions = length = None
        if pack is not None:
            positions, length = pack.positions + 1, pack.lengths
        if cosformer_len is not None:
            length = torch.full((q_.shape[0],), cosformer_len, device=q_.device)
        kw: dict[str, Any] = {"focus_power": focus_power, "positions": positions, "length": length}
        if q_.dtype in (torch.float16, torch.bfloat16):    # (the Triton form): maps and key sums in float32
            q_, k_, v_ = q_.float(), k_.float(), v_.float()
        q_, k_ = apply_feature_map(q_, feature_map, **kw), apply_feature_map(k_, feature_map, **kw)
        if pack is not None:        # phi(0) may be non-zero: padding keys must add nothing to the key sum
            k_ = torch.where(pack.valid[:, :, None, None], k_, 0.0)
        return q_, k_, v_

    def wrap(form, fn):
        if not normalize:
            return fn
        return (_normalised_by_key_sum if form == "triton" else _normalised_by_ones_column)(fn, eps)

    return _run("simple_gla", q, k, v, {"g": None}, scale=scale, initial_state=initial_state,
                output_final_state=output_final_state, cu_seqlens=cu_seqlens, mode=mode, causal=causal,
                prepare=prepare, wrap=wrap, extra_v=int(normalize))


def _normalised_by_ones_column(fn, eps: float):
    """``fn`` with the normaliser as an extra value column of ones (its state column is the key sum)."""
    def run(q, k, v, g, *, scale, initial_state, output_final_state, causal=True):
        o, state = fn(q, k, torch.cat([v, torch.ones_like(v[..., :1])], -1), g, scale=scale,
                      initial_state=initial_state, output_final_state=output_final_state, causal=causal)
        return o[..., :-1] / (o[..., -1:] + eps), state
    return run


def _normalised_by_key_sum(fn, eps: float):
    """``fn`` with the normaliser scale * q . (cumulative key sum + z0); z0 and the final sum in the state's last
    value column. Computed in float32 or float64 (a half-precision key sum overflows: fla's fp16 bug)."""
    def run(q, k, v, g, *, scale, initial_state, output_final_state, causal=True):
        s0 = z0 = None
        if initial_state is not None:
            s0, z0 = initial_state[..., :-1], initial_state[..., -1]
        o, state = fn(q, k, v, g, scale=scale, initial_state=s0, output_final_state=output_final_state,
                      causal=causal)
        z = k.cumsum(1) if causal else k.sum(1, keepdim=True)
        if z0 is not None:
            z = z + z0.to(z.dtype).unsqueeze(1)
        den = scale * (q * z).sum(-1, keepdim=True)
        if state is not None:
            state = torch.cat([state, z[:, -1].unsqueeze(-1).to(state.dtype)], -1)
        return o.to(den.dtype) / (den + eps), state
    return run


def gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float | None = None,
        initial_state: torch.Tensor | None = None, output_final_state: bool = False,
        cu_seqlens: torch.Tensor | None = None, mode: str = "auto",
        causal: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """GLA: a data-dependent log-decay per key channel, g [B, T, H, K] (``S = diag(exp(g)) S + k v^T``)."""
    check_gate(g, q.shape, "g")
    return _run("gla", q, k, v, {"g": g}, scale=scale, initial_state=initial_state,
                output_final_state=output_final_state, cu_seqlens=cu_seqlens, mode=mode, causal=causal)


def _l2norm(prepare: bool):
    def run(q, k, v, pack):
        if not prepare:
            return q, k, v
        if q.dtype in (torch.float16, torch.bfloat16):       # (the Triton form): normalise in float32
            q, k = q.float(), k.float()
        return F.normalize(q, dim=-1, eps=1e-6), F.normalize(k, dim=-1, eps=1e-6), v
    return run


def delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor,
               scale: float | None = None, initial_state: torch.Tensor | None = None,
               output_final_state: bool = False, cu_seqlens: torch.Tensor | None = None, mode: str = "auto",
               use_qk_l2norm_in_kernel: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """DeltaNet: ``S = S + beta k (v - S^T k)^T``; beta [B, T, H] in (0, 1); keys should be L2-normalised."""
    check_gate(beta, q.shape[:3], "beta")
    return _run("delta_rule", q, k, v, {"beta": beta, "g": None}, scale=scale, initial_state=initial_state,
                output_final_state=output_final_state, cu_seqlens=cu_seqlens, mode=mode,
                prepare=_l2norm(use_qk_l2norm_in_kernel))


def gated_delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
                     scale: float | None = None, initial_state: torch.Tensor | None = None,
                     output_final_state: bool = False, cu_seqlens: torch.Tensor | None = None, mode: str = "auto",
                     use_qk_l2norm_in_kernel: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated DeltaNet: ``S = exp(g) (I - beta k k^T) S + beta k v^T``; g, beta [B, T, H]."""
    check_gate(g, q.shape[:3], "g")
    check_gate(beta, q.shape[:3], "beta")
    return _run("delta_rule", q, k, v, {"beta": beta, "g": g}, scale=scale, initial_state=initial_state,
                output_final_state=output_final_state, cu_seqlens=cu_seqlens, mode=mode,
                prepare=_l2norm(use_qk_l2norm_in_kernel))


__all__ = ["MODES", "delta_rule", "gated_delta_rule", "gla", "lightning_attn", "lightning_decay", "linear_attn",
           "retention", "retention_decay", "simple_gla", "triton_available"]
