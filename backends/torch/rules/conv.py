"""Lowerings of convolutions to nn.Conv*d; asymmetric padding becomes an explicit F.pad."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import ctor
from archdsl.ir.types import TensorType
from archdsl.ops.conv import Conv1d, Conv2d, Conv3d, ConvNd, ConvTranspose2d

_CLASSES = {Conv1d: "nn.Conv1d", Conv2d: "nn.Conv2d", Conv3d: "nn.Conv3d", ConvTranspose2d: "nn.ConvTranspose2d"}


def _symmetric(pads: tuple[tuple[int, int], ...]) -> bool:
    return all(a == b for a, b in pads)


def _conv_module(op: ConvNd, ins: list[TensorType]) -> str:
    k, s, d = op.geometry()
    pads = op.pads()
    symmetric = _symmetric(pads)
    pad = tuple(a for a, _ in pads) if symmetric else 0
    extra: dict[str, object] = {}
    if isinstance(op, ConvTranspose2d):
        extra["output_padding"] = tuple(op.output_padding) if not isinstance(op.output_padding, int) \
            else (op.output_padding,) * 2
    else:
        extra["padding_mode"] = op.padding_mode if symmetric else "zeros"
    return ctor(_CLASSES[type(op)], op.in_channels(ins[0]), op.out_channels, kernel_size=k, stride=s,
                padding=pad, dilation=d, groups=op.groups, bias=op.bias, **extra)


@lowering(Conv1d, Conv2d, Conv3d, ConvTranspose2d, module=_conv_module, fresh=True)
def _conv(op: ConvNd, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    pads = op.pads()
    if _symmetric(pads):
        return f"{ref}({args[0]})"
    # F.pad takes (last_before, last_after, second_last_before, ...).
    flat = tuple(v for before, after in reversed(pads) for v in (before, after))
    mode = "constant" if op.padding_mode == "zeros" else op.padding_mode
    return f"{ref}(F.pad({args[0]}, {flat!r}, mode={mode!r}))"
