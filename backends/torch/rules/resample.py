"""Lowerings of resampling ops: F.interpolate, pixel (un)shuffle, a view-based channel shuffle, F.pad."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import fn
from archdsl.backends.torch.rules.shape import sizes_source
from archdsl.ir.types import TensorType
from archdsl.ops.resample import ChannelShuffle, Pad, PixelShuffle, PixelUnshuffle, Upsample


@lowering(Upsample)
def _interpolate(op: Upsample, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    given = {k: getattr(op, k) for k in ("scale_factor", "align_corners") if getattr(op, k) is not None}
    if op.size is None:
        return fn("F.interpolate", args[0], mode=op.mode, **given)
    size = op.size if isinstance(op.size, int) else tuple(op.per_axis(op.size, ins[0].rank - 2))
    if isinstance(size, int) or all(isinstance(d, int) for d in size):
        return fn("F.interpolate", args[0], mode=op.mode, size=size, **given)
    return fn("F.interpolate", args[0], f"size={sizes_source(size, args[0], ins[0])}", mode=op.mode, **given)


@lowering(PixelShuffle)
def _pixel_shuffle(op: PixelShuffle, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("F.pixel_shuffle", args[0], repr(op.upscale_factor))


@lowering(PixelUnshuffle)
def _pixel_unshuffle(op: PixelUnshuffle, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("F.pixel_unshuffle", args[0], repr(op.downscale_factor))


@lowering(ChannelShuffle)
def _channel_shuffle(op: ChannelShuffle, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    # [N, g*k, ...] -> [N, g, k, ...] -> [N, k, g, ...] -> [N, k*g, ...] (ShuffleNet; same as nn.ChannelShuffle)
    return f"{args[0]}.unflatten(1, ({op.groups}, -1)).transpose(1, 2).flatten(1, 2)"


@lowering(Pad)
def _pad(op: Pad, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    extra = {"value": op.value} if op.mode == "constant" else {}
    return fn("F.pad", args[0], repr(op.flat(ins[0])), mode=op.mode, **extra)
