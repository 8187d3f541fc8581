"""Lowerings of pooling ops to torch.nn.functional (pooling owns no parameters)."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import fn
from archdsl.ir.types import TensorType
from archdsl.ops import pool as P

_MAX = {P.MaxPool1d: "F.max_pool1d", P.MaxPool2d: "F.max_pool2d"}
_AVG = {P.AvgPool1d: "F.avg_pool1d", P.AvgPool2d: "F.avg_pool2d"}
_ADAPTIVE = {P.AdaptiveAvgPool1d: "F.adaptive_avg_pool1d", P.AdaptiveAvgPool2d: "F.adaptive_avg_pool2d",
             P.AdaptiveMaxPool1d: "F.adaptive_max_pool1d", P.AdaptiveMaxPool2d: "F.adaptive_max_pool2d"}


@lowering(*_MAX)
def _max_pool(op: P.MaxPoolNd, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    k, s, p, d = op.window()
    return fn(_MAX[type(op)], args[0], kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=op.ceil_mode)


@lowering(*_AVG)
def _avg_pool(op: P.AvgPoolNd, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    k, s, p, _ = op.window()
    return fn(_AVG[type(op)], args[0], kernel_size=k, stride=s, padding=p, ceil_mode=op.ceil_mode,
              count_include_pad=op.count_include_pad)


@lowering(*_ADAPTIVE)
def _adaptive(op: P.AdaptivePoolNd, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn(_ADAPTIVE[type(op)], args[0], output_size=op.output_size)


@lowering(P.GlobalAvgPool)
def _global_avg(op: P.GlobalAvgPool, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn(f"{args[0]}.mean", dim=op.axes(ins[0]), keepdim=op.keepdim)


@lowering(P.GlobalMaxPool)
def _global_max(op: P.GlobalMaxPool, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn(f"{args[0]}.amax", dim=op.axes(ins[0]), keepdim=op.keepdim)
