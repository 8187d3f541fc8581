"""Decoding with state: ``model.step(*inputs, state=None) -> (outputs, state)`` for generated modules.

A generated module whose graph has recurrent ops (the linear-attention family, ``short_conv``) gets a ``step``
method. It runs the ordinary forward on the new tokens (any number: one token while decoding, the whole prompt
for a prefill) with every recurrent op reading its state from ``state`` and writing the new one back:
linear attention carries its [N, H, K, V] state (the kernels' ``initial_state`` / ``final_state``), a short
convolution its last K - 1 inputs. So ``step`` on a prompt, then token after token, equals the full forward
on the concatenated sequence (checked in the tests in float64), provided the model's other ops act token by
token (projections, norms over features, MLPs, embeddings): the language models of the zoo.

``state`` is a plain dict (op key -> tensor); ``None`` starts from zeros. The dict passed in is not changed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archdsl.errors import Diagnostic, UsageError

STATE_ATTR = "_archdsl_decoding"


def step(module: torch.nn.Module, inputs: tuple, state: dict | None = None) -> tuple:
    """``(module(*inputs), new state)`` with the recurrent ops resuming from ``state`` (None: a fresh start)."""
    if state is not None and not isinstance(state, dict):
        raise UsageError(Diagnostic(f"step: state must be the dict a previous step returned (or None), got "
                                    f"{type(state).__name__}", hint="start with state=None and pass back the "
                                    "state each call returns: `y, state = model.step(x, state)`"))
    states = {} if state is None else dict(state)
    module.__dict__[STATE_ATTR] = states
    try:
        out = module(*inputs)
    finally:
        del module.__dict__[STATE_ATTR]
    return out, states


def attend(module: torch.nn.Module, key: str, fn, *args, **kwargs) -> torch.Tensor:
    """A linear-attention kernel call ``fn(q, k, v, gates..., **kwargs)``: its output, or while decoding, its
    output with the state under ``key`` passed in and the final state stored back."""
    states = module.__dict__.get(STATE_ATTR)
    if states is None:
        return fn(*args, **kwargs)[0]
    if not kwargs.get("causal", True) or kwargs.get("feature_map") == "cosformer":
        what = "bidirectional (causal=false)" if not kwargs.get("causal", True) else "cosFormer's position-weighted"
        raise UsageError(Diagnostic(f"step: {what} attention has no token-by-token form",
                                    hint="decode with causal ops only; run the full forward instead"))
    mode = "recurrent" if args[0].shape[1] == 1 else "auto"
    o, states[key] = fn(*args, initial_state=states.get(key), output_final_state=True, mode=mode, **kwargs)
    return o


def short_conv(module: torch.nn.Module, key: str, x: torch.Tensor, conv: torch.nn.Conv1d,
               activation: str) -> torch.Tensor:
    """fla's ShortConvolution on [B, T, C]: zeros before the first token, or while decoding, the last K - 1
    inputs under ``key``."""
    width = conv.kernel_size[0] - 1
    xt = x.transpose(1, 2)
    states = module.__dict__.get(STATE_ATTR)
    if states is None:
        xp = F.pad(xt, (width, 0))
    else:
        prev = states.get(key)
        if prev is None:
            prev = xt.new_zeros(*xt.shape[:2], width)
        xp = torch.cat([prev.to(xt.dtype), xt], -1)
        states[key] = xp[..., xp.shape[-1] - width:]
    y = F.conv1d(xp, conv.weight, conv.bias, groups=xt.shape[1]).transpose(1, 2)
    return F.silu(y) if activation == "silu" else y


def rotary(module: torch.nn.Module, key: str, x: torch.Tensor, base: float, interleaved: bool,
           rotary_dim: int | None) -> torch.Tensor:
    """RoPE on [B, T, H, D] from position 0, or while decoding, from the number of tokens seen (kept under ``key``)."""
    from archdsl.backends.torch.functional import rotary as turn

    states = module.__dict__.get(STATE_ATTR)
    if states is None:
        return turn(x, 0, base, interleaved, rotary_dim)
    seen = states.get(key)
    offset = 0 if seen is None else int(seen)
    states[key] = torch.tensor(offset + x.shape[1])
    return turn(x, offset, base, interleaved, rotary_dim)
