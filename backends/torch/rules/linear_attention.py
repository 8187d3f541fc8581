"""Lowerings of the linear-attention family: calls of ``archdsl.kernels`` (Triton on CUDA, chunked on CPU)."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import fn
from archdsl.ir.types import TensorType
from archdsl.ops import linear_attention as LA


@lowering(LA.Mamba2Decay)
def _mamba2_decay(op: LA.Mamba2Decay, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    a, a_log, dt_bias = args
    return f"-{a_log}.exp() * F.softplus({a} + {dt_bias})"


@lowering(*(op for op in LA.OPS if issubclass(op, LA.LinearAttentionOp)))
def _linear_attention(op: LA.LinearAttentionOp, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    names = op.input_names()
    positional = [a for a, name in zip(args, names, strict=True) if name not in ("initial_state", "cu_seqlens")]
    named = {name: a for a, name in zip(args, names, strict=True) if name in ("initial_state", "cu_seqlens")}
    kwargs = op.kernel_kwargs() | {"output_final_state": op.output_final_state}
    extra = "".join(f", {k}={v}" for k, v in named.items())
    call = fn(f"rt.kernels.{op.kernel}", *positional, **kwargs)[:-1] + extra + ")"
    return call if op.output_final_state else f"{call}[0]"
