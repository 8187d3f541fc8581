"""Lowerings of the linear-attention family: calls of ``archdsl.kernels`` (Triton on CUDA, chunked on CPU),
through ``rt.decoding`` so that ``model.step`` can carry each op's state."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import ctor, fn
from archdsl.ir.types import TensorType
from archdsl.ops import linear_attention as LA


@lowering(LA.Mamba2Decay)
def _mamba2_decay(op: LA.Mamba2Decay, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    a, a_log, dt_bias = args
    return f"-{a_log}.exp() * F.softplus({a} + {dt_bias})"


def _short_conv_module(op: LA.ShortConvolution, ins: list[TensorType]) -> str:
    c = int(ins[0].shape[2])
    return ctor("nn.Conv1d", c, c, op.kernel_size, groups=c, bias=op.bias)


@lowering(LA.ShortConvolution, module=_short_conv_module)
def _short_conv(op: LA.ShortConvolution, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    if ref is None:
        raise ValueError("a ShortConvolution owns a weight: its call needs the module reference")
    return f"rt.decoding.short_conv(self, {ref.removeprefix('self.')!r}, {args[0]}, {ref}, {op.activation!r})"


@lowering(*(op for op in LA.OPS if issubclass(op, LA.LinearAttentionOp)))
def _linear_attention(op: LA.LinearAttentionOp, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    names = op.input_names()
    positional = [a for a, name in zip(args, names, strict=True) if name not in ("initial_state", "cu_seqlens")]
    named = {name: a for a, name in zip(args, names, strict=True) if name in ("initial_state", "cu_seqlens")}
    kwargs = op.kernel_kwargs()
    if op.output_final_state or named:      # states wired in the spec: the plain call, the spec owns them
        extra = "".join(f", {k}={v}" for k, v in named.items())
        call = fn(f"rt.kernels.{op.kernel}", *positional, **kwargs,
                  output_final_state=op.output_final_state)[:-1] + extra + ")"
        return call if op.output_final_state else f"{call}[0]"
    key = f"{op.name}({', '.join(positional)})"     # value names are unique: one key per node
    return fn("rt.decoding.attend", "self", repr(key), f"rt.kernels.{op.kernel}", *positional, **kwargs)
