"""Lowerings of pooling ops to torch.nn.functional."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import fn
from archdsl.ir.types import TensorType
from archdsl.ops.pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d


@lowering(MaxPool2d)
def _max_pool(op: MaxPool2d, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    k, s, p, _ = op.window()
    return fn("F.max_pool2d", args[0], kernel_size=k, stride=s, padding=p, ceil_mode=op.ceil_mode)


@lowering(AvgPool2d)
def _avg_pool(op: AvgPool2d, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    k, s, p, _ = op.window()
    return fn("F.avg_pool2d", args[0], kernel_size=k, stride=s, padding=p, ceil_mode=op.ceil_mode,
              count_include_pad=op.count_include_pad)


@lowering(AdaptiveAvgPool2d)
def _adaptive_avg(op: AdaptiveAvgPool2d, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("F.adaptive_avg_pool2d", args[0], output_size=op.output_size)
