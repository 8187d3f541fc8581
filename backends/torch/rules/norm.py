"""Lowerings of normalisation layers to their nn modules (so buffers and train/eval match PyTorch)."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import ctor
from archdsl.ir.types import TensorType
from archdsl.ops.norm import BatchNorm1d, BatchNorm2d, BatchNormNd, channels

_BN = {BatchNorm1d: "nn.BatchNorm1d", BatchNorm2d: "nn.BatchNorm2d"}


def _bn_module(op: BatchNormNd, ins: list[TensorType]) -> str:
    return ctor(_BN[type(op)], channels(op, ins[0]), eps=op.eps, momentum=op.momentum, affine=op.affine,
                track_running_stats=op.track_running_stats)


@lowering(BatchNorm1d, BatchNorm2d, module=_bn_module)
def _bn(op: BatchNormNd, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{ref}({args[0]})"
