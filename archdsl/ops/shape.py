"""Shape ops: reshape, expand, permute, transpose, squeeze, unsqueeze, concat, split, chunk, slice, select.

They move data and compute nothing, so each is linear in its input. Target sizes may be symbolic
(``reshape(x, (N, C, H*W))``, ``reshape(t, (B, d, H, W))``): a backend computes them at run time, from the
input's axes where it can and otherwise from the symbols bound once from the graph's inputs.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import field_validator

from archdsl.errors import OpError
from archdsl.ir.dims import Dim, SymDim, divide_exactly
from archdsl.ir.types import DimField, TensorType
from archdsl.ops.base import NOT_AFFINE_HINT, OpDef, PositiveInt, Trait, norm_axis
from archdsl.symmetry.contract import Broadcast, Cut, Joined, Moved, Pointwise, Reshaped, swapped

_MOVE = frozenset({Trait.LINEAR, Trait.SHAPE_ONLY})


def product(dims: tuple[Dim, ...] | list[Dim]) -> Dim:
    """The product of (symbolic) sizes."""
    out: Dim = 1
    for d in dims:
        out = out * d
    return out


def exact_div(a: Dim, b: Dim) -> Dim | None:
    """``a / b`` when it is provably exact, else None."""
    if a == b:
        return 1
    if not isinstance(b, int):
        return divide_exactly(a, b)
    if b == 0:
        return None
    q = a // b
    return q if q * b == a else None


def symbol_axes(x: TensorType) -> dict[str, int]:
    """Symbols that are a whole axis size of ``x`` (``N`` in ``[N, C, H*W]``), mapped to the first such axis."""
    out: dict[str, int] = {}
    for i, d in enumerate(x.shape):
        if isinstance(d, SymDim) and str(d) in d.symbols:
            out.setdefault(str(d), i)
    return out


def derivable(d: Dim, x: TensorType) -> bool:
    """Can a backend compute size ``d`` from ``x``'s own shape (an axis of x, or its symbols)?

    Sizes that are not are still computable: backends bind every symbol from the graph's inputs (see
    :mod:`archdsl.ir.symbols`); reading them off ``x`` keeps the generated code local where it can be.
    """
    if isinstance(d, int) or d in x.shape:
        return True
    return d.symbols <= symbol_axes(x).keys()


def runtime_shape(op: OpDef, target: tuple[Dim, ...], x: TensorType) -> tuple[Dim, ...]:
    """``target`` as a backend computes it: one size that ``x`` does not give may become -1 (inferred); the
    others are ints, sizes read off ``x``, or expressions in the symbols bound from the graph's inputs."""
    del op
    if -1 in target:
        return tuple(target)
    foreign = [i for i, d in enumerate(target) if not derivable(d, x)]
    if len(foreign) != 1:
        return tuple(target)
    return tuple(-1 if i == foreign[0] else d for i, d in enumerate(target))


def check_sizes(sizes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """Sizes must be non-negative, except -1 ('infer this one')."""
    for d in sizes:
        if isinstance(d, int) and d < -1:
            raise ValueError(f"sizes must be non-negative or -1, got {d}")
    return sizes


class Reshape(OpDef):
    """View ``x`` with another shape of the same number of elements; one size may be -1 (inferred)."""

    name: ClassVar = "reshape"
    symmetry: ClassVar = Reshaped()
    positional: ClassVar = ("shape",)
    family: ClassVar = "shape"
    traits: ClassVar = _MOVE
    shape: tuple[DimField, ...]

    @field_validator("shape")
    @classmethod
    def _sizes(cls, v: tuple[Dim, ...]) -> tuple[Dim, ...]:
        if sum(1 for d in v if d == -1) > 1:
            raise ValueError("at most one size may be -1")
        return check_sizes(v)

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        runtime_shape(self, self.shape, x)
        if -1 not in self.shape:
            if product(self.shape) != x.numel():
                raise OpError(f"reshape: cannot view {x} ({x.numel()} elements) as {list(self.shape)} "
                              f"({product(self.shape)} elements)", "the new shape must hold as many elements as "
                              "the input: fix a size, or write -1 for the one axis to infer")
            return [x.with_shape(self.shape)]
        known = [d for d in self.shape if d != -1]
        return [x.with_shape(tuple(self.infer_missing(x, known) if d == -1 else d for d in self.shape))]

    def infer_missing(self, x: TensorType, known: list[Dim]) -> Dim:
        """The size of the -1 axis: the input's elements over the known sizes, cancelling equal factors."""
        have = list(x.shape)
        rest = []
        for d in known:
            if d in have:
                have.remove(d)
            else:
                rest.append(d)
        size = exact_div(product(have), product(rest))
        if size is None:
            raise OpError(f"reshape: cannot split {x} into {list(self.shape)}: {product(have)} is not a multiple "
                          f"of {product(rest)}", hint="give the -1 size explicitly")
        return size


class Expand(OpDef):
    """Broadcast size-1 axes to ``shape`` (-1 keeps an axis); new leading axes may be added."""

    name: ClassVar = "expand"
    symmetry: ClassVar = Broadcast()
    positional: ClassVar = ("shape",)
    family: ClassVar = "shape"
    traits: ClassVar = _MOVE
    shape: tuple[DimField, ...]

    @field_validator("shape")
    @classmethod
    def _sizes(cls, v: tuple[Dim, ...]) -> tuple[Dim, ...]:
        return check_sizes(v)

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        lead = len(self.shape) - x.rank
        if lead < 0:
            raise OpError(f"expand: shape {list(self.shape)} has fewer axes than the input {x}",
                          f"give a size (or -1 to keep it) for each of the input's {x.rank} axes; to drop axes use "
                          "squeeze or reshape")
        out = list(self.shape[:lead])
        if -1 in out:
            raise OpError(f"expand: -1 is not allowed for the new leading axes in {list(self.shape)}",
                          "give new leading axes an explicit size; -1 only keeps an existing axis")
        for have, want in zip(x.shape, self.shape[lead:], strict=True):
            if want != -1 and have != want and have != 1:
                raise OpError(f"expand: cannot expand {x} to {list(self.shape)} (size {have} is not 1)",
                              "only size-1 axes broadcast: write -1 to keep an axis, or reduce it to size 1 first")
            out.append(have if want == -1 else want)
        return [x.with_shape(tuple(out))]


class ExpandAs(OpDef):
    """Broadcast the size-1 axes ``dims`` (None: all) of ``x`` to the sizes of ``other`` (same rank)."""

    name: ClassVar = "expand_as"
    symmetry: ClassVar = Broadcast()           # `other` gives sizes only
    positional: ClassVar = ("dims",)
    arity: ClassVar = 2
    family: ClassVar = "shape"
    traits: ClassVar = _MOVE
    dims: int | tuple[int, ...] | None = None

    def axes(self, rank: int) -> tuple[int, ...]:
        """The expanded axes, normalised."""
        dims = range(rank) if self.dims is None else (self.dims,) if isinstance(self.dims, int) else self.dims
        return tuple(sorted({norm_axis(self, d, rank) for d in dims}))

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x, other = inputs
        if x.rank != other.rank:
            raise OpError(f"expand_as: {x} and {other} have different ranks",
                          "unsqueeze or reshape the first input to the rank of the second first")
        out = list(x.shape)
        for i in self.axes(x.rank):
            if x.shape[i] != 1 and x.shape[i] != other.shape[i]:
                raise OpError(f"expand_as: axis {i} of {x} has size {x.shape[i]}, not 1, so it cannot take the "
                              f"size {other.shape[i]} of {other}", "only size-1 axes broadcast: name the axes to "
                              "expand with dims=..., or reduce the axis to size 1 first")
            out[i] = other.shape[i]
        return [x.with_shape(tuple(out))]


class Permute(OpDef):
    """Reorder axes: output axis i is input axis dims[i]."""

    name: ClassVar = "permute"
    symmetry: ClassVar = Moved(order=lambda op, rank: [d % rank for d in op.dims])
    positional: ClassVar = ("dims",)
    family: ClassVar = "shape"
    traits: ClassVar = _MOVE
    dims: tuple[int, ...]

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        if len(self.dims) != x.rank:
            raise OpError(f"permute: dims {list(self.dims)} name {len(self.dims)} axes, but the input {x} has "
                          f"{x.rank}", f"list every axis once, in its new order (a permutation of 0..{x.rank - 1}); "
                          "to swap two axes use transpose")
        axes = [norm_axis(self, d, x.rank) for d in self.dims]
        if sorted(axes) != list(range(x.rank)):
            raise OpError(f"permute: dims {list(self.dims)} is not a permutation of the axes of {x}",
                          f"list every axis 0..{x.rank - 1} exactly once (-1 is the last axis)")
        return [x.with_shape(tuple(x.shape[a] for a in axes))]


class Transpose(OpDef):
    """Swap two axes."""

    name: ClassVar = "transpose"
    symmetry: ClassVar = Moved(order=lambda op, rank: swapped(rank, op.dim0 % rank, op.dim1 % rank))
    positional: ClassVar = ("dim0", "dim1")
    family: ClassVar = "shape"
    traits: ClassVar = _MOVE
    dim0: int
    dim1: int

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        a, b = norm_axis(self, self.dim0, x.rank), norm_axis(self, self.dim1, x.rank)
        shape = list(x.shape)
        shape[a], shape[b] = shape[b], shape[a]
        return [x.with_shape(tuple(shape))]


class Squeeze(OpDef):
    """Drop size-1 axes ``dim`` (None: every axis whose size is known to be 1; symbolic axes stay)."""

    name: ClassVar = "squeeze"
    symmetry: ClassVar = Reshaped()
    positional: ClassVar = ("dim",)
    family: ClassVar = "shape"
    traits: ClassVar = _MOVE
    dim: int | tuple[int, ...] | None = None

    def axes(self, x: TensorType) -> tuple[int, ...]:
        """The dropped axes, normalised; OpError when one is not known to be 1."""
        if self.dim is None:
            return tuple(i for i, d in enumerate(x.shape) if d == 1)
        dims = (self.dim,) if isinstance(self.dim, int) else self.dim
        axes = tuple(sorted({norm_axis(self, d, x.rank) for d in dims}))
        for a in axes:
            if x.shape[a] != 1:
                raise OpError(f"squeeze: axis {a} of {x} has size {x.shape[a]}, not 1",
                              "squeeze only drops size-1 axes: name one of those, or use flatten/reshape to merge "
                              "axes")
        return axes

    def resolve(self, inputs: list[TensorType]) -> Squeeze:
        return self.model_copy(update={"dim": self.axes(inputs[0])})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        axes = self.axes(x)
        return [x.with_shape(tuple(d for i, d in enumerate(x.shape) if i not in axes))]


class Unsqueeze(OpDef):
    """Insert a size-1 axis at position ``dim`` of the output."""

    name: ClassVar = "unsqueeze"
    symmetry: ClassVar = Reshaped()
    positional: ClassVar = ("dim",)
    family: ClassVar = "shape"
    traits: ClassVar = _MOVE
    dim: int

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        a = norm_axis(self, self.dim, x.rank + 1)
        return [x.with_shape((*x.shape[:a], 1, *x.shape[a:]))]


class Concat(OpDef):
    """Join tensors along axis ``dim`` (default 0, as torch.cat): ``concat([a, b], dim=1)``."""

    name: ClassVar = "concat"
    symmetry: ClassVar = Joined()
    positional: ClassVar = ("dim",)
    arity: ClassVar = None
    family: ClassVar = "shape"
    traits: ClassVar = _MOVE
    dim: int = 0

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if not inputs:
            raise OpError("concat needs at least one tensor", "write concat([a, b], dim=1)")
        first = inputs[0]
        a = norm_axis(self, self.dim, first.rank)
        total: Dim = 0
        for i, t in enumerate(inputs):
            if t.rank != first.rank or t.dtype != first.dtype:
                raise OpError(f"concat: tensor {i + 1} is {t} ({t.dtype}, rank {t.rank}), but tensor 1 is {first} "
                              f"({first.dtype}, rank {first.rank})", "concat joins tensors of one rank and dtype: "
                              "reshape (flatten, unsqueeze) the odd one first")
            for ax, (p, q) in enumerate(zip(first.shape, t.shape, strict=True)):
                if ax != a and p != q:
                    raise OpError(f"concat along axis {a}: tensor {i + 1} {t} differs from tensor 1 {first} on "
                                  f"axis {ax} ({q} vs {p})", f"all axes but dim={self.dim} must match: resize, pool "
                                  "or pad one tensor, or concat along the axis where they differ")
            total = total + t.shape[a]
        return [first.with_shape((*first.shape[:a], total, *first.shape[a + 1:]))]


MAX_PIECES = 10_000     # outputs of one split or chunk (each is a graph value); checked before listing them


def _few(n: Dim | None, what: str) -> None:
    """OpError when a cut would make more than MAX_PIECES pieces (before the list of them is built)."""
    if isinstance(n, int) and n > MAX_PIECES:
        raise OpError(f"{what} would make {n:,} pieces, more than the limit of {MAX_PIECES:,}",
                      hint="cut into fewer, larger pieces")


def pieces(op: OpDef, x: TensorType, dim: int, sizes: list[Dim]) -> list[TensorType]:
    """One output type per piece along ``dim``."""
    a = norm_axis(op, dim, x.rank)
    return [x.with_shape((*x.shape[:a], s, *x.shape[a + 1:])) for s in sizes]


class Split(OpDef):
    """Cut axis ``dim`` into pieces of ``split_size_or_sections`` (an int: equal pieces, last may be smaller)."""

    name: ClassVar = "split"
    symmetry: ClassVar = Cut()
    positional: ClassVar = ("split_size_or_sections", "dim")
    family: ClassVar = "shape"
    traits: ClassVar = _MOVE
    split_size_or_sections: int | tuple[int, ...]
    dim: int = 0

    @field_validator("split_size_or_sections")
    @classmethod
    def _positive(cls, v: int | tuple[int, ...]) -> int | tuple[int, ...]:
        if (v <= 0) if isinstance(v, int) else (not v or any(s < 0 for s in v)):
            raise ValueError("sizes must be positive")
        return v

    def sizes(self, x: TensorType) -> list[Dim]:
        """The size of each piece."""
        d = x.shape[norm_axis(self, self.dim, x.rank)]
        s = self.split_size_or_sections
        if isinstance(s, int):
            if isinstance(d, int):
                _few(-(-d // s), "split")
                return [min(s, d - i) for i in range(0, d, s)] or [0]
            n = exact_div(d, s)
            _few(n, "split")
            if not isinstance(n, int):
                raise OpError(f"split: the number of pieces of size {s} of axis {self.dim} of {x} is not known",
                              hint="split an axis of known size, or use chunk")
            return [s] * n
        if sum(s) != d:
            raise OpError(f"split: sections {list(s)} add up to {sum(s)}, but axis {self.dim} of {x} has size {d}",
                          f"give sections that add up to {d}, or one int for equal pieces")
        return list(s)

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        return pieces(self, inputs[0], self.dim, self.sizes(inputs[0]))


class Chunk(OpDef):
    """Cut axis ``dim`` into ``chunks`` pieces as torch.chunk does (ceil-sized; possibly fewer pieces)."""

    name: ClassVar = "chunk"
    symmetry: ClassVar = Cut()
    positional: ClassVar = ("chunks", "dim")
    family: ClassVar = "shape"
    traits: ClassVar = _MOVE
    chunks: PositiveInt
    dim: int = 0

    def sizes(self, x: TensorType) -> list[Dim]:
        """The size of each piece."""
        d = x.shape[norm_axis(self, self.dim, x.rank)]
        if isinstance(d, int):
            step = max(1, -(-d // self.chunks))
            _few(-(-d // step), "chunk")
            return [min(step, d - i) for i in range(0, d, step)] or [0]
        _few(self.chunks, "chunk")
        size = exact_div(d, self.chunks)
        if size is None:
            raise OpError(f"chunk: axis {self.dim} of {x} (size {d}) is not known to split into {self.chunks} "
                          "equal pieces", f"choose chunks dividing the size, declare it a multiple of {self.chunks}, "
                          "or split with explicit sections")
        return [size] * self.chunks

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        return pieces(self, inputs[0], self.dim, self.sizes(inputs[0]))


class Slice(OpDef):
    """``x[..., start:end:step, ...]`` on axis ``dim`` (Python slice rules; step > 0)."""

    name: ClassVar = "slice"
    symmetry: ClassVar = Cut()
    positional: ClassVar = ("dim", "start", "end", "step")
    family: ClassVar = "shape"
    traits: ClassVar = _MOVE
    dim: int
    start: DimField | None = None
    end: DimField | None = None
    step: PositiveInt = 1

    def length(self, d: Dim) -> Dim:
        """Elements selected from an axis of size ``d``; symbolic sizes and bounds are assumed in range
        (``slice(1, end=T)`` of a position table: ``T``, bound from the input, is at most its length)."""
        if isinstance(d, int) and not isinstance(self.start, SymDim) and not isinstance(self.end, SymDim):
            return len(range(d)[self.start:self.end:self.step])
        start = 0 if self.start is None else self.start if _symbolic_or_nonneg(self.start) else d + self.start
        end = d if self.end is None else self.end if _symbolic_or_nonneg(self.end) else d + self.end
        return (end - start + self.step - 1) // self.step

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        a = norm_axis(self, self.dim, x.rank)
        n = self.length(x.shape[a])
        if isinstance(n, int) and n <= 0:
            raise OpError(f"slice {self.start}:{self.end}:{self.step} of axis {a} of {x} is empty",
                          f"choose start < end within the axis' size {x.shape[a]} (negative counts from the end)")
        return [x.with_shape((*x.shape[:a], n, *x.shape[a + 1:]))]


def _symbolic_or_nonneg(b: Dim) -> bool:
    """A slice bound counted from the start of the axis (a symbol expression, or an int >= 0)."""
    return isinstance(b, SymDim) or b >= 0


class Select(OpDef):
    """``x[..., index, ...]`` on axis ``dim``: picks one position and drops the axis (ViT's class token)."""

    name: ClassVar = "select"
    symmetry: ClassVar = Cut()
    positional: ClassVar = ("dim", "index")
    family: ClassVar = "shape"
    traits: ClassVar = _MOVE
    dim: int
    index: int

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        a = norm_axis(self, self.dim, x.rank)
        d = x.shape[a]
        if isinstance(d, int) and not -d <= self.index < d:
            raise OpError(f"select: index {self.index} is out of range for axis {a} of {x}",
                          f"an index on an axis of size {d} runs from 0 to {d - 1} (or {-d} to -1 from the end)")
        return [x.with_shape((*x.shape[:a], *x.shape[a + 1:]))]


class Identity(OpDef):
    """Returns its input unchanged (an explicit placeholder, like nn.Identity)."""

    name: ClassVar = "identity"
    symmetry: ClassVar = Pointwise()
    family: ClassVar = "shape"
    traits: ClassVar = _MOVE | {Trait.ELEMENTWISE, Trait.EVAL_IDENTITY, Trait.CHANNEL_AFFINE}

    def eval_affine_axis(self, x: TensorType) -> int | None:
        """The identity in eval mode: a uniform affine map (scale 1, shift 0)."""
        return min(1, max(x.rank - 1, 0))

    def eval_affine(self, params: dict, x: TensorType) -> tuple[int, object, object]:
        """(axis, None, None): scale 1, shift 0."""
        axis = self.eval_affine_axis(x)
        if axis is None:
            raise OpError(f"{self.name} is not a channel-affine map of {x}", NOT_AFFINE_HINT)
        return axis, None, None

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        return [inputs[0]]


OPS = (Reshape, Expand, ExpandAs, Permute, Transpose, Squeeze, Unsqueeze, Concat, Split, Chunk, Slice, Select,
       Identity)
