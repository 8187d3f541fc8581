"""Which ops are eval-mode affine maps of a channels-first tensor, and their ConvMaps (merge, collapse).

Recognised through what ops declare -- ``conv_form``, the CHANNEL_AFFINE trait with ``eval_affine``, and
``scale_operands`` for ``x * p`` with a per-channel free parameter -- never through op names.
"""

from __future__ import annotations

from collections.abc import Mapping

from archdsl.ir.graph import Node
from archdsl.ir.rewrite import GraphEditor
from archdsl.ops.base import OpDef, Trait
from archdsl.ops.conv import Conv1d, Conv2d, Conv3d, ConvNd
from archdsl.ops.linear import Linear
from archdsl.passes import convmap as cm


def _linear(m: cm.ConvMap) -> OpDef:
    return Linear(out_features=m.out_channels, bias=m.has_bias)


def _conv(cls: type[ConvNd]):
    def make(m: cm.ConvMap) -> OpDef:
        return cls(out_channels=m.out_channels, kernel_size=m.size, stride=m.stride, padding=cm.conv_padding(m),
                   groups=m.groups, bias=m.has_bias,
                   padding_mode=m.mode)  # type: ignore[arg-type]  # a conv's own padding_mode, carried as str
    return make


# the op a merged map with n spatial dims becomes, and the channel groups that op can have (None: any)
MERGED_OP = {0: (_linear, 1), 1: (_conv(Conv1d), None), 2: (_conv(Conv2d), None), 3: (_conv(Conv3d), None)}


def constant_scale(edit: GraphEditor, node: Node) -> tuple[int, int] | None:
    """For x * p or x / p with p a free parameter varying only along x's channel axis: p's position, exponent."""
    if len(node.inputs) != 2 or len(node.outputs) != 1:
        return None
    for i, exponent in node.op.scale_operands():
        p, x = node.inputs[i], node.inputs[1 - i]
        source = edit.producer(p)
        if source is None or source.inputs or set(source.params) != {""}:
            continue
        pt, xt = edit.types[p], edit.types[x]
        shape = (1,) * (xt.rank - pt.rank) + tuple(pt.shape)
        if xt.rank >= 2 and len(shape) == xt.rank and node.types[0] == xt and \
                all(d == 1 for j, d in enumerate(shape) if j != 1) and shape[1] in (1, xt.shape[1]):
            return i, exponent
    return None


def chain_input(edit: GraphEditor, node: Node) -> str | None:
    """The tensor input through which ``node`` is an eval-affine map of a channels-first tensor, or None."""
    if len(node.outputs) != 1:
        return None
    if len(node.inputs) == 2:
        found = constant_scale(edit, node)
        return None if found is None else node.inputs[1 - found[0]]
    if len(node.inputs) != 1:
        return None
    x = edit.types[node.inputs[0]]
    if x.rank < 2:
        return None
    if node.op.conv_form(x) is not None or \
            (node.op.has(Trait.CHANNEL_AFFINE) and node.op.eval_affine_axis(x) == 1):
        return node.inputs[0]
    return None


def map_of(edit: GraphEditor, node: Node, weights: Mapping | None) -> cm.ConvMap:
    """The ConvMap of one chain op (weight mode when ``weights`` is given)."""
    source = chain_input(edit, node)
    if source is None:
        raise ValueError(f"{node.name} is not an eval-affine map of a channels-first tensor")
    x = edit.types[source]
    channels, spatial = int(x.shape[1]), x.rank - 2
    if len(node.inputs) == 2:                                      # x * p or x / p
        if weights is None:
            return cm.channel_affine(channels, spatial, None, None, False, False)
        scaled = constant_scale(edit, node)
        owner = edit.producer(node.inputs[scaled[0]]) if scaled is not None else None
        if scaled is None or owner is None:
            raise ValueError(f"{node.name} does not scale by a free parameter")
        i, exponent = scaled
        factor = weights[owner.params[""]].detach().double().reshape(-1)
        return cm.channel_affine(channels, spatial, factor ** exponent, None, False, True)
    params = {local: weights[full] for local, full in node.params.items()} if weights is not None else None
    form = node.op.conv_form(x)
    if form is not None:
        return cm.from_form(form, params)
    if params is None:
        import torch

        probe = {k: torch.empty(tuple(int(d) for d in edit.params[f].shape), device="meta")
                 for k, f in node.params.items()}
        _, _, shift = node.op.eval_affine(probe, x)
        return cm.channel_affine(channels, spatial, None, None, shift is not None, False)
    _, scale, shift = node.op.eval_affine({k: t.detach().double() for k, t in params.items()}, x)
    return cm.channel_affine(channels, spatial, scale, shift, shift is not None, True)
