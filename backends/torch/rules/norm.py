"""Lowerings of normalisation layers to their nn modules (so buffers and train/eval match PyTorch).

An op without parameters or buffers has no module (``ref`` is None) and lowers to the functional form.
"""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import ctor, fn
from archdsl.ir.types import TensorType
from archdsl.ops.norm import (
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    BatchNormNd,
    GroupNorm,
    InstanceNorm2d,
    LayerNorm,
    LayerNorm2d,
    LocalResponseNorm,
    RMSNorm,
    channels,
)

_BN = {BatchNorm1d: "nn.BatchNorm1d", BatchNorm2d: "nn.BatchNorm2d", BatchNorm3d: "nn.BatchNorm3d"}


def _bn_module(op: BatchNormNd, ins: list[TensorType]) -> str:
    return ctor(_BN[type(op)], channels(op, ins[0]), eps=op.eps, momentum=op.momentum, affine=op.affine,
                track_running_stats=op.track_running_stats)


@lowering(BatchNorm1d, BatchNorm2d, BatchNorm3d, module=_bn_module, fresh=True)
def _bn(op: BatchNormNd, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    if ref is None:   # no affine, no running stats: batch statistics in train and eval (as nn.BatchNorm)
        return fn("F.batch_norm", args[0], "None", "None", training=True, eps=op.eps)
    return f"{ref}({args[0]})"


def _layer_norm_module(op: LayerNorm, ins: list[TensorType]) -> str:
    return ctor("nn.LayerNorm", op.shape(ins[0]), eps=op.eps, elementwise_affine=op.elementwise_affine,
                bias=op.bias)


@lowering(LayerNorm, module=_layer_norm_module)
def _layer_norm(op: LayerNorm, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    if ref is None:
        return fn("F.layer_norm", args[0], repr(op.shape(ins[0])), eps=op.eps)
    return f"{ref}({args[0]})"


def _rms_norm_module(op: RMSNorm, ins: list[TensorType]) -> str:
    return ctor("nn.RMSNorm", op.shape(ins[0]), eps=op.eps, elementwise_affine=op.elementwise_affine)


@lowering(RMSNorm, module=_rms_norm_module)
def _rms_norm(op: RMSNorm, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    if ref is None:
        return fn("F.rms_norm", args[0], repr(op.shape(ins[0])), eps=op.eps)
    return f"{ref}({args[0]})"


def _layer_norm2d_module(op: LayerNorm2d, ins: list[TensorType]) -> str:
    return ctor("nn.LayerNorm", channels(op, ins[0]), eps=op.eps, elementwise_affine=op.elementwise_affine,
                bias=op.bias)


@lowering(LayerNorm2d, module=_layer_norm2d_module)
def _layer_norm2d(op: LayerNorm2d, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    # channels-first -> channels-last, LayerNorm over C, and back (timm LayerNorm2d).
    last = f"{args[0]}.movedim(1, -1)"
    normed = f"{ref}({last})" if ref else fn("F.layer_norm", last, repr((channels(op, ins[0]),)), eps=op.eps)
    return f"{normed}.movedim(-1, 1)"


def _group_norm_module(op: GroupNorm, ins: list[TensorType]) -> str:
    return ctor("nn.GroupNorm", op.num_groups, channels(op, ins[0]), eps=op.eps, affine=op.affine)


@lowering(GroupNorm, module=_group_norm_module)
def _group_norm(op: GroupNorm, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    if ref is None:
        return fn("F.group_norm", args[0], repr(op.num_groups), eps=op.eps)
    return f"{ref}({args[0]})"


def _instance_norm_module(op: InstanceNorm2d, ins: list[TensorType]) -> str:
    return ctor("nn.InstanceNorm2d", channels(op, ins[0]), eps=op.eps, momentum=op.momentum, affine=op.affine,
                track_running_stats=op.track_running_stats)


@lowering(InstanceNorm2d, module=_instance_norm_module)
def _instance_norm(op: InstanceNorm2d, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    if ref is None:
        return fn("F.instance_norm", args[0], eps=op.eps)
    return f"{ref}({args[0]})"


@lowering(LocalResponseNorm)
def _lrn(op: LocalResponseNorm, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("F.local_response_norm", args[0], size=op.size, alpha=op.alpha, beta=op.beta, k=op.k)
