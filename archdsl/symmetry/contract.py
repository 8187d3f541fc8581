"""The symmetry contract vocabulary: each op class declares one of these next to its shape rule.

A contract says how an op's output axes and parameter axes tie to its input axes (which hidden-unit
classes it creates, ties, cuts into blocks, consumes or pins) and which per-unit scalings pass through it.
The derivation (:mod:`archdsl.symmetry.walk`) runs the contracts over a graph; an op without a contract
pins every axis it touches, so a new op is safe by default.

Scaling kinds come from the op's traits where they can: LINEAR ops pass any nonzero factor, HOMOGENEOUS
ones (ReLU, max-pool) positive factors, ODD ones (tanh) signs, other nonlinearities none.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archdsl.ops.base import OpDef, Trait
from archdsl.symmetry.layout import Layout, Piece

Ctx = Any            # archdsl.symmetry.walk.Context (duck-typed here to keep this module import-light)
Outputs = list[list[Layout]]


def attr(op: OpDef, name: str) -> Any:
    """A declared attribute of ``op``: a contract is shared by several op classes and reads theirs by name."""
    return getattr(op, name)


def trait_kind(op: OpDef) -> str:
    """The per-unit scaling an elementwise op commutes with, read from its traits."""
    if op.has(Trait.LINEAR):
        return "gl"                      # the same linear map on every unit commutes with mixing units
    if op.has(Trait.HOMOGENEOUS) and op.has(Trait.ODD):
        return "any"
    if op.has(Trait.HOMOGENEOUS):
        return "positive"
    if op.has(Trait.ODD):
        return "sign"
    return "none"


def swapped(rank: int, a: int, b: int) -> list[int]:
    """Axis order with ``a`` and ``b`` exchanged (transpose)."""
    order = list(range(rank))
    order[a], order[b] = b, a
    return order


def concat(layouts: list[Layout]) -> Layout:
    """Layouts one after the other on one axis."""
    return tuple(p for lay in layouts for p in lay)


class Contract(ABC):
    """Base: subclasses turn the op's input layouts into output layouts, recording parameter members."""

    @abstractmethod
    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        """Output layouts (one list of axis layouts per output)."""

    def describe(self) -> str:
        """One line for ``archdsl symmetries --explain``."""
        return (self.__doc__ or type(self).__name__).splitlines()[0]


@dataclass(frozen=True)
class Pinned(Contract):
    """Every axis the op touches is pinned (no symmetry may move it), with the reason."""

    reason: str

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        for layouts in ctx.inputs:
            for lay in layouts:
                ctx.pin(lay, self.reason)
        return [[ctx.pinned(d) for d in t.shape] for t in ctx.out_types]


@dataclass(frozen=True)
class Pointwise(Contract):
    """Elementwise with broadcasting: output axes tie to the matching input axes; per-channel parameters
    (``params``: name -> input axis) tie with them; scaling passes as the traits allow (or ``kind``)."""

    params: tuple[tuple[str, int | str], ...] = ()      # axis: an index, or the attribute holding it
    kind: str | None = None

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        out = ctx.out_types[0]
        kind = self.kind or trait_kind(op)
        result = []
        for lay, t in zip(ctx.inputs, ctx.in_types, strict=True):
            for j, size in enumerate(t.shape):
                if size != out.shape[j + out.rank - t.rank]:
                    ctx.constrain(lay[j], "none", "broadcast: one unit stands for many")
        for i, size in enumerate(out.shape):
            axes = [lay[j] for lay, t in zip(ctx.inputs, ctx.in_types, strict=True)
                    if (j := i - (out.rank - t.rank)) >= 0 and t.shape[j] == size]
            lay = axes[0] if axes else ctx.pinned(size)
            for other in axes[1:]:
                lay = ctx.tie(lay, other, "elementwise inputs")
            ctx.constrain(lay, kind, f"{op.name} passes only '{kind}' scaling")
            if any((j := i - (out.rank - t.rank)) >= 0 and t.shape[j] != size for t in ctx.in_types):
                ctx.constrain(lay, "none", "an input is broadcast along this axis (it cannot scale with it)")
            result.append(lay)
        for name, where in self.params:
            axis = getattr(op, where) if isinstance(where, str) else where
            if name in ctx.params and ctx.params[name].shape == (out.shape[axis],):
                ctx.member(name, 0, result[axis], exponent=0)
                ctx.constrain(result[axis], "any", f"{op.name} has a parameter per unit")
        return [result]


@dataclass(frozen=True)
class Dense(Contract):
    """A channel-creating linear map: the output channel axis is a new class (weight rows, bias), the input
    channel axis is consumed by the weight's columns; ``groups`` cuts both into blocks that may also be
    permuted as wholes; kernel (spatial) axes are mixed, so they are pinned."""

    in_axis: int = -1
    out_axis: int = -1
    transposed: bool = False            # weight is [in, out/groups, ...] (ConvTranspose)
    spatial: bool = False               # axes after the channel axis are mixed by a kernel

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        x, t, o = ctx.inputs[0], ctx.in_types[0], ctx.out_types[0]
        g = getattr(op, "groups", 1)
        ia, oa = self.in_axis % t.rank, self.out_axis % o.rank
        n_in, n_out = int(t.shape[ia]), int(o.shape[oa])
        if g > 1 and g == n_in == n_out and not self.transposed:
            return [self._per_channel(ctx, x, o, ia, oa)]
        ins = ctx.cut(x[ia], [n_in // g] * g)
        token = ctx.token("gl", "output channels")
        outs = [ctx.fresh(n_out // g, "output channels", token=token) for _ in range(g)]
        out_layout = concat(outs)
        if "weight" in ctx.params:
            roles = getattr(ctx.params["weight"], "layout", ()) or ()      # the weight's typed axis roles win
            transposed = roles[:2] == ("in", "out") if len(roles) >= 2 else self.transposed
            rows, cols, exps, step = (ins, outs, (-1, 1), n_in // g) if transposed else \
                (outs, ins, (1, -1), n_out // g)
            ctx.member("weight", 0, concat(rows), exponent=exps[0])
            for b in range(g):
                ctx.member("weight", 1, cols[b], exponent=exps[1], index=(0, b * step, (b + 1) * step) if g > 1 else None)
            ctx.fixed("weight", range(2, len(ctx.params["weight"].shape)), "kernel window axes")
        if "bias" in ctx.params:
            ctx.member("bias", 0, out_layout, exponent=1)
        if g > 1:
            ctx.block([[ins[b], outs[b]] for b in range(g)], f"{g} groups")
        result = []
        for i, size in enumerate(o.shape):
            if i == oa:
                result.append(out_layout)
            elif self.spatial and i > oa:
                ctx.pin(x[i], "mixed by the kernel window")
                result.append(ctx.pinned(size))
            else:
                result.append(x[i])
        return [result]


    def _per_channel(self, ctx: Ctx, x: list[Layout], o, ia: int, oa: int) -> list[Layout]:
        """Depthwise with one filter per channel: channels pass through (a per-channel linear map)."""
        lay = x[ia]
        ctx.member("weight", 0, lay, exponent=0)
        ctx.constrain(lay, "any", "one filter per channel")
        ctx.fixed("weight", range(2, len(ctx.params["weight"].shape)), "kernel window axes")
        if "bias" in ctx.params:
            ctx.member("bias", 0, lay, exponent=1)
        result = []
        for i, size in enumerate(o.shape):
            if self.spatial and i > oa:
                ctx.pin(x[i], "mixed by the kernel window")
                result.append(ctx.pinned(size))
            else:
                result.append(lay if i == oa else x[i])
        return result


@dataclass(frozen=True)
class ChannelStats(Contract):
    """Per-channel statistics (eval BatchNorm): permutations pass; a per-channel scaling of the input is
    absorbed by the running statistics and the weight; the affine parameters start a new scaling link."""

    axis: int = 1

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        x = ctx.inputs[0]
        lay = x[self.axis]
        affine = "weight" in ctx.params
        out = ctx.retoken(lay, "any" if affine else "none", "normalised channels")
        ctx.constrain(lay, "any", "per-channel statistics")
        if affine and "running_var" in ctx.params:
            ctx.member("running_mean", 0, lay, exponent=1)
            ctx.member("running_var", 0, lay, exponent=2)
            ctx.member("weight", 0, lay, exponent=0, role=("bn", ctx.param_key("running_var"), attr(op, "eps")))
        else:
            ctx.constrain(lay, "none", "statistics of the batch (or no affine weight to absorb a scaling)")
            for name in ("running_mean", "running_var"):
                if name in ctx.params:
                    ctx.member(name, 0, lay, exponent=0)
        for name in ("weight", "bias"):
            if name in ctx.params:
                ctx.member(name, 0, out, exponent=1)
        return [[out if i == self.axis else a for i, a in enumerate(x)]]


@dataclass(frozen=True)
class FeatureNorm(Contract):
    """Normalisation over a feature axis (LayerNorm, RMSNorm, GroupNorm): permutations pass (GroupNorm:
    within and across its groups), per-unit scaling of the input does not; the affine starts a new link."""

    axis: int | None = None        # None: the trailing ``normalized_shape`` axes
    groups: str | None = None      # attribute holding a group count (GroupNorm)

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        x, t = ctx.inputs[0], ctx.in_types[0]
        axes = [self.axis % t.rank] if self.axis is not None else \
            list(range(t.rank - len(attr(op, "normalized_shape")), t.rank))
        for lay in x:
            ctx.constrain(lay, "none", f"{op.name} statistics mix the units")
        g = getattr(op, self.groups) if self.groups else 1
        if 1 < g < int(t.shape[axes[0]]):            # one group, or one per channel: nothing to cut
            segs = ctx.cut(x[axes[0]], [int(t.shape[axes[0]]) // g] * g)
            ctx.block([[s] for s in segs], f"{g} normalisation groups")
        kind = "any" if "weight" in ctx.params else "none"
        out = [ctx.retoken(lay, kind, "normalised features") if i in axes else lay for i, lay in enumerate(x)]
        for name in ("weight", "bias"):
            if name in ctx.params:
                for k, a in enumerate(axes):
                    ctx.member(name, k, out[a], exponent=1)
        return [out]


@dataclass(frozen=True)
class Window(Contract):
    """Sliding windows over trailing spatial axes (pooling, resizing, padding): other axes pass through,
    the windowed ones are pinned; scaling passes as the traits allow."""

    # the callables below receive an op of the class declaring the contract (its own fields), hence Any
    count: Callable[[Any, Any], int] | None = None        # windowed axes; default op.spatial or rank - 2

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        x, t, o = ctx.inputs[0], ctx.in_types[0], ctx.out_types[0]
        n = self.count(op, t) if self.count else getattr(op, "spatial", t.rank - 2)
        kind = trait_kind(op)
        result = []
        for i, size in enumerate(o.shape):
            if i >= o.rank - n:
                ctx.pin(x[i], f"{op.name} mixes positions along this axis")
                result.append(ctx.pinned(size))
            else:
                ctx.constrain(x[i], kind, f"{op.name} passes only '{kind}' scaling")
                result.append(x[i])
        return [result]


@dataclass(frozen=True)
class Reduction(Contract):
    """Reductions over axes: a reduced axis is consumed (any permutation of it leaves a sum, mean or max
    unchanged; a per-unit scaling does not); the other axes pass through."""

    axes: Callable[[Any, Any], tuple[int, ...]]          # (op of the declaring class, input type)
    keepdim: bool = True              # honour the op's keepdim attribute

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        x, t = ctx.inputs[0], ctx.in_types[0]
        axes = set(self.axes(op, t))
        kind = trait_kind(op)
        result = []
        for i, lay in enumerate(x):
            if i in axes:
                ctx.constrain(lay, "none", f"{op.name} sums over this axis")
                if getattr(op, "keepdim", False):
                    result.append(ctx.pinned(1))
            else:
                ctx.constrain(lay, kind, f"{op.name} passes only '{kind}' scaling")
                result.append(lay)
        return [result]


@dataclass(frozen=True)
class Moved(Contract):
    """Axis reorders (transpose, permute): each output axis is an input axis; any scaling passes."""

    order: Callable[[Any, int], list[int]]               # (op of the declaring class, rank)

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        x = ctx.inputs[0]
        return [[x[i] for i in self.order(op, len(x))]]


@dataclass(frozen=True)
class Reshaped(Contract):
    """Views with another shape (reshape, flatten, squeeze, unsqueeze): merged axes become one layout whose
    units repeat over the merged pinned axes (C x H x W -> C blocks of H*W); a split of a permutable axis
    into several (attention heads) becomes a stack of per-head chunks (see :mod:`archdsl.symmetry.heads`)."""

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        return [ctx.reshape(ctx.inputs[0], ctx.in_types[0].shape, ctx.out_types[0].shape)]


@dataclass(frozen=True)
class Joined(Contract):
    """Concatenation: the joined axis is the inputs' layouts one after the other; other axes tie."""

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        rank = ctx.out_types[0].rank
        dim = attr(op, "dim") % rank
        result = []
        for i in range(rank):
            if i == dim:
                result.append(concat([x[i] for x in ctx.inputs]))
                continue
            lay = ctx.inputs[0][i]
            for x in ctx.inputs[1:]:
                lay = ctx.tie(lay, x[i], "concatenated tensors")
            result.append(lay)
        return [result]


@dataclass(frozen=True)
class Cut(Contract):
    """Split, chunk, slice and select: each output takes a range of one axis, cutting its classes there
    (a straddling slice splits a class); a strided slice or a selected position pins what it picks."""

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        x, t = ctx.inputs[0], ctx.in_types[0]
        dim = attr(op, "dim") % t.rank
        size = t.shape[dim]
        if not isinstance(size, int):
            return [[ctx.pinned(d) if i == dim else x[i] for i, d in enumerate(o.shape)] for o in ctx.out_types]
        if hasattr(op, "index"):                                   # select: one position, axis dropped
            i = op.index % size
            ctx.pin(ctx.sub(x[dim], i, i + 1), f"position {i} is selected")
            return [[a for k, a in enumerate(x) if k != dim]]
        if hasattr(op, "step"):                                    # slice
            picked = range(size)[attr(op, "start"):attr(op, "end"):attr(op, "step")]
            if attr(op, "step") != 1:
                ctx.pin(x[dim], f"a strided slice (step {attr(op, 'step')}) picks single units")
                return [[ctx.pinned(len(picked)) if k == dim else a for k, a in enumerate(x)]]
            return [[ctx.sub(x[dim], picked.start, picked.stop) if k == dim else a for k, a in enumerate(x)]]
        parts = ctx.cut(x[dim], [int(o.shape[dim]) for o in ctx.out_types])
        return [[parts[j] if k == dim else a for k, a in enumerate(x)] for j in range(len(ctx.out_types))]


@dataclass(frozen=True)
class Broadcast(Contract):
    """Expand size-1 axes: axes kept at their size pass through, expanded or new ones are pinned copies."""

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        x, t, o = ctx.inputs[0], ctx.in_types[0], ctx.out_types[0]
        lead = o.rank - t.rank
        for j, size in enumerate(t.shape):
            if size != o.shape[j + lead]:
                ctx.constrain(x[j], "none", "broadcast: one unit stands for many")
        return [[x[i - lead] if i >= lead and t.shape[i - lead] == size else ctx.pinned(size)
                 for i, size in enumerate(o.shape)]]


@dataclass(frozen=True)
class Contraction(Contract):
    """a @ b: the inner axis is consumed (permuting it in both operands leaves the product unchanged);
    the row axis of a and the column axis of b pass through; batch axes tie."""

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        (a, b), (ta, tb), o = ctx.inputs, ctx.in_types, ctx.out_types[0]
        inner = ctx.tie(a[-1], b[-2], "contracted by a matrix product")
        ctx.constrain(inner, "none", "a per-unit scaling of both operands does not cancel")
        for lay, t in ((a[:-2], ta), (b[:-2], tb)):
            for j, size in enumerate(t.shape[:-2]):
                if size != o.shape[j + o.rank - t.rank]:
                    ctx.constrain(lay[j], "none", "broadcast: one unit stands for many")
        batch = []
        for i in range(o.rank - 2):
            axes = [lay[j] for lay, t in ((a[:-2], ta), (b[:-2], tb))
                    if (j := i - (o.rank - 2 - (t.rank - 2))) >= 0 and t.shape[j] == o.shape[i]]
            lay = axes[0] if axes else ctx.pinned(o.shape[i])
            for other in axes[1:]:
                lay = ctx.tie(lay, other, "matrix-product batch axes")
            ctx.constrain(lay, "none", "both operands scale")
            batch.append(lay)
        return [[*batch, a[-2], b[-1]]]


@dataclass(frozen=True)
class AttentionCore(Contract):
    """softmax(q k^T) v: q and k's feature axes tie (consumed), keys and values' positions tie, queries'
    positions and values' features pass through; a causal mask pins positions."""

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        q, k, v = ctx.inputs
        qk = ctx.tie(q[-1], k[-1], "query-key product")
        ctx.constrain(qk, "none", "scores pass through a softmax")
        kv = ctx.tie(k[-2], v[-2], "keys and values share positions")
        rows = q[-2]
        for lay in (kv, rows):
            ctx.constrain(lay, "none", "scores pass through a softmax")
            if getattr(op, "is_causal", False):
                ctx.pin(lay, "the causal mask orders positions")
        batch = [ctx.tie(ctx.tie(a, b, "attention batch axes"), c, "attention batch axes")
                 for a, b, c in zip(q[:-2], k[:-2], v[:-2], strict=True)]
        return [[*batch, rows, v[-1]]]


@dataclass(frozen=True)
class SelfAttention(Contract):
    """Multi-head self-attention on [B, T, D]: heads are blocks (permuted as wholes across q, k, v and the
    output projection); inside a head, q and k's units are one class and v's units another; the output
    projection creates a new class; tokens pass through (attention is permutation-equivariant in T)."""

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        x, t = ctx.inputs[0], ctx.in_types[0]
        d, h = int(t.shape[-1]), attr(op, "num_heads")
        qk, v = ctx.token("none", "query-key units"), ctx.token("gl", "value units")
        heads_qk = [ctx.fresh(d // h, "query-key units of a head", token=qk) for _ in range(h)]
        heads_v = [ctx.fresh(d // h, "value units of a head", token=v) for _ in range(h)]
        rows = concat(heads_qk) + concat(heads_qk) + concat(heads_v)
        out = ctx.fresh(d, "attention output channels", kind="gl")
        ctx.member("in_proj_weight", 0, rows, exponent=1)
        ctx.member("in_proj_weight", 1, x[-1], exponent=-1)
        if "in_proj_bias" in ctx.params:
            ctx.member("in_proj_bias", 0, rows, exponent=1)
        ctx.member("out_proj.weight", 1, concat(heads_v), exponent=-1)
        ctx.member("out_proj.weight", 0, out, exponent=1)
        if "out_proj.bias" in ctx.params:
            ctx.member("out_proj.bias", 0, out, exponent=1)
        ctx.block([[heads_qk[i], heads_v[i]] for i in range(h)], f"{h} attention heads")
        for lay in x[:-1]:
            ctx.constrain(lay, "none", "attention is not homogeneous in its tokens")
        return [[*x[:-1], out]]


@dataclass(frozen=True)
class Lookup(Contract):
    """Embedding: the table's columns are a new class; the ids (and the table's rows) are pinned."""

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        out = ctx.fresh(attr(op, "embedding_dim"), "embedding features", kind="gl")
        ctx.member("weight", 1, out, exponent=1)
        ctx.fixed("weight", [0], "rows are picked by the (pinned) input ids")
        return [[*ctx.inputs[0], out]]


@dataclass(frozen=True)
class Free(Contract):
    """A free parameter tensor: each axis longer than one is a new class (tied by whatever uses it)."""

    def derive(self, op: OpDef, ctx: Ctx) -> Outputs:
        result = []
        for i, size in enumerate(ctx.out_types[0].shape):
            if size == 1:
                result.append(ctx.pinned(1))
                continue
            lay = ctx.fresh(size, f"axis {i} of a free parameter", kind="gl")
            ctx.member("", i, lay, exponent=1)
            result.append(lay)
        return [result]


def retoken(layout: Layout, token: int) -> Layout:
    """The same leaves on a new scaling link."""
    return tuple(Piece(p.leaf, p.length, p.rep, token if p.leaf is not None else None) for p in layout)
