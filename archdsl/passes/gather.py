"""Shape-only ops as exact channel maps, found by running the op once on element ids (never by its name).

A ``SHAPE_ONLY`` op moves data and computes nothing, so its whole action is a gather: which input element each
output element copies. ``collapse-linear`` needs two kinds of them inside affine regions:

- a *channel gather* (slice, split, chunk, concat, channel shuffle along axis 1): every output channel is one
  input channel, with the spatial positions untouched -- a one-hot 1x1 convolution of the region's map;
- a *row-major flatten* ([N, C, *spatial] -> [N, C * prod(spatial)], static sizes): conv -> flatten -> Linear
  is one Linear.

Both are read off the op's own PyTorch lowering applied to tensors of unique ids at two probe sizes, and
refused unless the types say the spatial axes pass through unchanged (so the gather holds at every size).
"""

from __future__ import annotations

import math

from archdsl.ir.graph import Node
from archdsl.ir.rewrite import GraphEditor
from archdsl.ir.types import TensorType
from archdsl.ops.base import Trait

PROBES = (3, 4)            # spatial probe sizes: two, so a gather that depended on the size would show


def _run(node: Node, types: list[TensorType], inputs: list) -> list | None:
    """The op's own lowering on ``inputs`` (None when it cannot run on them)."""
    import math as m

    import torch
    import torch.nn.functional as F

    from archdsl.backends.torch import runtime as rt
    from archdsl.backends.torch.registry import rule_for

    try:
        expr = rule_for(node.op).call(node.op, [f"a{i}" for i in range(len(inputs))], None, types)
        # Safe: `expr` is archdsl's own lowering source for a parameter-free shape op (what codegen writes into
        # model.py, attributes validated by the op's schema), never text from a spec file.
        fn = eval(f"lambda {', '.join(f'a{i}' for i in range(len(inputs)))}: {expr}",  # noqa: S307
                  {"torch": torch, "F": F, "rt": rt, "math": m})
        out = fn(*inputs)
    except Exception:                  # noqa: BLE001 -- an op that cannot run on a probe is simply not a gather
        return None
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _shape_op(node: Node) -> bool:
    return node.op.has(Trait.SHAPE_ONLY) and not node.params and bool(node.inputs)


def channel_gather(edit: GraphEditor, node: Node) -> tuple[tuple[tuple[int, int], ...], ...] | None:
    """For a shape-only op that only picks channels: per output, per output channel, (input index, channel)."""
    if not _shape_op(node):
        return None
    ins = [edit.types[v] for v in node.inputs]
    first = ins[0]
    if first.rank < 3 or any(t.rank != first.rank or not isinstance(t.shape[1], int) for t in [*ins, *node.types]):
        return None
    if any(t.shape[0] != first.shape[0] or t.shape[2:] != first.shape[2:] for t in [*ins, *node.types]):
        return None
    import torch

    found = None
    for size in PROBES:
        spatial = (size,) * (first.rank - 2)
        cells = math.prod(spatial)
        offsets = [0]
        for t in ins:
            offsets.append(offsets[-1] + t.shape[1])
        xs = [(torch.arange(t.shape[1], dtype=torch.float64) + offsets[i]).reshape(1, -1, *(1,) * len(spatial)) *
              cells + torch.arange(cells, dtype=torch.float64).reshape(1, 1, *spatial) for i, t in enumerate(ins)]
        outs = _run(node, ins, xs)
        if outs is None or len(outs) != len(node.types):
            return None
        picks = []
        for y, t in zip(outs, node.types, strict=True):
            if tuple(y.shape) != (1, t.shape[1], *spatial):
                return None
            ids = y.reshape(t.shape[1], cells)
            channel = torch.div(ids[:, :1], cells, rounding_mode="floor")
            if not torch.equal(ids, channel * cells + torch.arange(cells, dtype=torch.float64)):
                return None
            picks.append(tuple(_source(int(c), offsets) for c in channel.reshape(-1)))
        if found is not None and picks != found:
            return None
        found = picks
    return tuple(found) if found is not None else None


def _source(channel: int, offsets: list[int]) -> tuple[int, int]:
    i = max(j for j, o in enumerate(offsets[:-1]) if o <= channel)
    return i, channel - offsets[i]


def flatten_shaped(edit: GraphEditor, node: Node) -> bool:
    """A shape-only op from [N, C, *spatial] (static) to [N, C * prod(spatial)]: a flatten by its types alone
    (cheap: no torch; :func:`flattens` confirms it before a rewrite)."""
    if not _shape_op(node) or len(node.inputs) != 1 or len(node.outputs) != 1:
        return False
    x, y = edit.types[node.inputs[0]], node.types[0]
    if x.rank < 3 or y.rank != 2 or y.shape[0] != x.shape[0] or not all(isinstance(d, int) for d in x.shape[1:]):
        return False
    return y.shape[1] == math.prod(x.shape[1:]) <= 1 << 20


def flattens(edit: GraphEditor, node: Node) -> bool:
    """A row-major flatten of a channels-first tensor with static channels and spatial sizes (run on ids)."""
    if not flatten_shaped(edit, node):
        return False
    import torch

    x = edit.types[node.inputs[0]]
    n = math.prod(x.shape[1:])
    ids = torch.arange(n, dtype=torch.float64)
    outs = _run(node, [x], [ids.reshape(1, *x.shape[1:])])
    return outs is not None and len(outs) == 1 and torch.equal(outs[0].reshape(-1), ids) and \
        tuple(outs[0].shape) == (1, n)


def shuffle_factor(edit: GraphEditor, node: Node) -> int | None:
    """For a pixel shuffle ([N, C r*r, H, W] -> [N, C, H r, W r], checked on ids): r; else None."""
    if not _shape_op(node) or len(node.inputs) != 1 or len(node.outputs) != 1:
        return None
    x, y = edit.types[node.inputs[0]], node.types[0]
    if x.rank != 4 or y.rank != 4 or not isinstance(x.shape[1], int) or not isinstance(y.shape[1], int) or \
            y.shape[1] == 0 or x.shape[1] % y.shape[1]:
        return None
    r = math.isqrt(x.shape[1] // y.shape[1])
    if r < 2 or r * r * y.shape[1] != x.shape[1] or x.shape[0] != y.shape[0] or \
            any(b != a * r for a, b in zip(x.shape[2:], y.shape[2:], strict=True)):
        return None
    import torch

    c, size = y.shape[1], PROBES[0]
    ids = torch.arange(x.shape[1] * size * size, dtype=torch.float64).reshape(1, x.shape[1], size, size)
    want = ids.reshape(c, r, r, size, size).permute(0, 3, 1, 4, 2).reshape(1, c, size * r, size * r)
    outs = _run(node, [x], [ids])
    return r if outs is not None and len(outs) == 1 and torch.equal(outs[0], want) else None
