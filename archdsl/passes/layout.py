"""Per-channel vectors broadcast onto weights by axis role (never by position), honouring channel groups."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archdsl.ir.graph import Param
from archdsl.ops.base import IN, OUT

if TYPE_CHECKING:
    import torch

_OTHER = {OUT: IN, IN: OUT}


def along(param: Param, role: str, vector: torch.Tensor) -> torch.Tensor:
    """``vector`` (one entry per channel of the ``role`` side) shaped to multiply ``param``'s weight.

    With groups, the ``role`` axis of a grouped weight holds only channels/groups entries; which channel an
    entry is depends on the group of the other channel axis: conv [out, in/g, k...] scaled along "in", or
    ConvTranspose [in, out/g, k...] scaled along "out".
    """
    shape = [int(d) for d in param.shape]
    axis = param.axis_of(role)
    if shape[axis] == vector.numel():                  # the role axis is complete: a plain broadcast
        view = [1] * len(shape)
        view[axis] = -1
        return vector.reshape(view)
    other = param.axis_of(_OTHER[role])
    g = param.groups
    if shape[axis] * g != vector.numel() or shape[other] % g:
        raise ValueError(f"{param.name}: {vector.numel()} channels do not fit layout {param.layout} "
                         f"of shape {shape} with {g} groups")
    per_group = vector.reshape(g, 1, shape[axis])                       # [g, 1, role/g]
    table = per_group.expand(g, shape[other] // g, shape[axis]).reshape(shape[other], shape[axis])
    if other > axis:
        table = table.transpose(0, 1)
    view = [1] * len(shape)
    view[min(axis, other)], view[max(axis, other)] = table.shape
    return table.reshape(view)
