"""Index ops: picking by integer tensors, rolling, masks and selections, running sums, repeats and einsum.

Integer index tensors are int64 (or int32); masks are bool. Attributes are validated when the op is made; shape
rules work on symbolic dims and raise OpError naming both shapes.
"""

from __future__ import annotations

import string
from typing import ClassVar

from pydantic import field_validator, model_validator

from archdsl.errors import OpError
from archdsl.ir.dims import Dim
from archdsl.ir.types import TensorType
from archdsl.ops.base import Cost, OpDef, Trait, norm_axis
from archdsl.ops.construct import INT_DTYPES, Number, number_dtype
from archdsl.ops.tensor import broadcast
from archdsl.symmetry.contract import Pinned

_PICKED = Pinned("positions are picked by an index")


def fits(value: Number, dtype: str) -> bool:
    """Can ``value`` be held by a tensor of ``dtype`` without changing the tensor's dtype (torch promotion)?"""
    if dtype == "bool":
        return isinstance(value, bool)
    if dtype in INT_DTYPES:
        return isinstance(value, int)
    return True


def expect_index(op: OpDef, t: TensorType, what: str = "index") -> None:
    """Raise OpError unless ``t`` holds integer indices."""
    if t.dtype not in INT_DTYPES:
        raise OpError(f"{op.name}: the {what} must be an int64 or int32 tensor, got {t}",
                      hint="build indices with arange (int64) or declare the input as int64[...]")


class IndexSelect(OpDef):
    """``x[..., index, ...]`` on axis ``dim`` by an integer tensor: the axis becomes the index's axes.

    A 1-d index is ``torch.index_select``; an index [Nq, Nk] picks a table [H, N] on dim 1 into [H, Nq, Nk]
    (``table[:, idx]``, LeViT's attention biases; ONNX Gather).
    """

    name: ClassVar = "index_select"
    symmetry: ClassVar = _PICKED
    positional: ClassVar = ("dim",)
    arity: ClassVar = 2
    family: ClassVar = "index"
    dim: int

    def resolve(self, inputs: list[TensorType]) -> IndexSelect:
        return self.model_copy(update={"dim": norm_axis(self, self.dim, inputs[0].rank)})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x, index = inputs
        expect_index(self, index)
        axis = norm_axis(self, self.dim, x.rank)
        return [x.with_shape((*x.shape[:axis], *index.shape, *x.shape[axis + 1:]))]


class Gather(OpDef):
    """``torch.gather(x, dim, index)``: out[i][j] = x[i][index[i][j]] on axis ``dim``; the output has the index's
    shape, which must not exceed x's on the other axes."""

    name: ClassVar = "gather"
    symmetry: ClassVar = _PICKED
    positional: ClassVar = ("dim",)
    arity: ClassVar = 2
    family: ClassVar = "index"
    dim: int

    def resolve(self, inputs: list[TensorType]) -> Gather:
        return self.model_copy(update={"dim": norm_axis(self, self.dim, inputs[0].rank)})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x, index = inputs
        expect_index(self, index)
        if index.rank != x.rank:
            raise OpError(f"gather: the index {index} must have the rank of the input {x}",
                          "unsqueeze or expand the index to the input's rank (torch.gather's rule); for picking "
                          "whole rows use index_select")
        axis = norm_axis(self, self.dim, x.rank)
        for i, (a, b) in enumerate(zip(x.shape, index.shape, strict=True)):
            if i != axis and isinstance(a, int) and isinstance(b, int) and b > a:
                raise OpError(f"gather: the index {index} is larger than the input {x} on axis {i}",
                              f"only axis dim={self.dim} of the index may exceed the input; slice the index on the "
                              "other axes")
        return [x.with_shape(index.shape)]


class Roll(OpDef):
    """``torch.roll(x, shifts, dims)``: shift along each axis with wrap-around (Swin's shifted windows)."""

    name: ClassVar = "roll"
    symmetry: ClassVar = Pinned("positions move along the rolled axes")
    positional: ClassVar = ("shifts", "dims")
    family: ClassVar = "index"
    traits: ClassVar = frozenset({Trait.LINEAR, Trait.SHAPE_ONLY})
    shifts: int | tuple[int, ...]
    dims: int | tuple[int, ...]

    @model_validator(mode="after")
    def _pairs(self) -> Roll:
        if len(self.shift_list()) != len(self.dim_list()) or not self.dim_list():
            raise ValueError(f"shifts {self.shifts} and dims {self.dims} must pair up (one shift per axis)")
        return self

    def shift_list(self) -> tuple[int, ...]:
        """Shifts as a tuple."""
        return (self.shifts,) if isinstance(self.shifts, int) else self.shifts

    def dim_list(self) -> tuple[int, ...]:
        """Axes as a tuple."""
        return (self.dims,) if isinstance(self.dims, int) else self.dims

    def resolve(self, inputs: list[TensorType]) -> Roll:
        axes = tuple(norm_axis(self, d, inputs[0].rank) for d in self.dim_list())
        return self.model_copy(update={"dims": axes, "shifts": self.shift_list()})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        for d in self.dim_list():
            norm_axis(self, d, inputs[0].rank)
        return [inputs[0]]


class Where(OpDef):
    """``torch.where(condition, input, other)``: ``input`` where the bool condition holds, else ``other``.

    Either value may be a tensor or a number (``where(mask, x, other=0.0)``, ``where(mask, input=-100.0,
    other=0.0)``); shapes broadcast; numbers take the tensor's dtype.
    """

    name: ClassVar = "where"
    symmetry: ClassVar = Pinned("a mask selects elements")
    positional: ClassVar = ("other",)
    arity: ClassVar = None
    family: ClassVar = "index"
    input: Number | None = None
    other: Number | None = None

    def tensor_count(self) -> int:
        """Tensor inputs the op takes: the condition and each value not given as a number."""
        return 1 + (self.input is None) + (self.other is None)

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if len(inputs) != self.tensor_count():
            raise OpError(f"where takes {self.tensor_count()} tensors here (the condition and the values not given "
                          f"as numbers), got {len(inputs)}", hint="where(mask, x, y) or where(mask, x, other=0.0)")
        cond, values = inputs[0], inputs[1:]
        if cond.dtype != "bool":
            raise OpError(f"where: the condition must be a bool tensor, got {cond}",
                          hint="make one with a comparison: gt(x, 0.0), eq(a, b)")
        out = cond.with_shape(cond.shape)
        if not values:
            if self.input is None or self.other is None:     # tensor_count() counted them as numbers
                raise OpError("where: with no value tensors, input and other must both be numbers",
                              hint="where(mask, input=1.0, other=0.0), or pass the values as tensors")
            dtype = number_dtype(self.input, self.other)
            return [TensorType(shape=cond.shape, dtype=dtype)]
        for v in values:
            out = broadcast(self, out.model_copy(update={"dtype": v.dtype}), v)
        for number in (self.input, self.other):
            if number is not None and not fits(number, out.dtype):
                raise OpError(f"where: the number {number!r} does not fit the {out.dtype} values",
                              hint="give a number of the tensor's kind (an int for int64, true/false for bool)")
        return [out]


class Triangle(OpDef):
    """Base of tril/triu: keep one triangle of the last two axes, relative to diagonal ``diagonal``."""

    positional: ClassVar = ("diagonal",)
    family: ClassVar = "index"
    symmetry: ClassVar = Pinned("a triangle of the last two axes is kept")
    traits: ClassVar = frozenset({Trait.LINEAR})
    diagonal: int = 0

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if inputs[0].rank < 2:
            raise OpError(f"{self.name} needs at least two axes, got {inputs[0]}",
                          "it works on the last two axes (a matrix): reshape a vector to [1, n] or [n, 1] first")
        return [inputs[0]]


class Tril(Triangle):
    """The lower triangle of the last two axes (elements above diagonal ``diagonal`` become 0): causal masks."""

    name: ClassVar = "tril"


class Triu(Triangle):
    """The upper triangle of the last two axes (elements below diagonal ``diagonal`` become 0)."""

    name: ClassVar = "triu"


class Cumsum(OpDef):
    """Running sum along axis ``dim`` (int32 and bool sum to int64, as in torch)."""

    name: ClassVar = "cumsum"
    symmetry: ClassVar = Pinned("a running sum along this axis")
    positional: ClassVar = ("dim",)
    family: ClassVar = "index"
    traits: ClassVar = frozenset({Trait.LINEAR})
    dim: int

    def resolve(self, inputs: list[TensorType]) -> Cumsum:
        return self.model_copy(update={"dim": norm_axis(self, self.dim, inputs[0].rank)})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        norm_axis(self, self.dim, x.rank)
        dtype = "int64" if x.dtype in ("int32", "bool") else x.dtype
        return [TensorType(shape=x.shape, dtype=dtype)]


class RepeatInterleave(OpDef):
    """Repeat each element ``repeats`` times along ``dim`` ([a, b] -> [a, a, b, b]); no dim: of the flattened x."""

    name: ClassVar = "repeat_interleave"
    symmetry: ClassVar = Pinned("elements are repeated along this axis")
    positional: ClassVar = ("repeats", "dim")
    family: ClassVar = "index"
    traits: ClassVar = frozenset({Trait.LINEAR, Trait.SHAPE_ONLY})
    repeats: int
    dim: int | None = None

    @field_validator("repeats")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError(f"must be positive, got {v}")
        return v

    def resolve(self, inputs: list[TensorType]) -> RepeatInterleave:
        if self.dim is None:
            return self
        return self.model_copy(update={"dim": norm_axis(self, self.dim, inputs[0].rank)})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        if self.dim is None:
            return [x.with_shape((x.numel() * self.repeats,))]
        axis = norm_axis(self, self.dim, x.rank)
        return [x.with_shape((*x.shape[:axis], x.shape[axis] * self.repeats, *x.shape[axis + 1:]))]


_LETTERS = set(string.ascii_letters)


def parse_equation(equation: str) -> tuple[list[str], str]:
    """(input terms, output term) of an einsum equation; '...' kept as '.'; ValueError on a malformed one."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    for term in [*terms, rhs] if arrow else terms:
        body = term.replace("...", ".")
        if not set(body) <= _LETTERS | {"."} or body.count(".") > 1:
            raise ValueError(f"bad term {term!r}: letters and at most one '...'")
    terms = [t.replace("...", ".") for t in terms]
    if arrow:
        out = rhs.replace("...", ".")
        if len(set(out)) != len(out):
            raise ValueError(f"the output {rhs!r} repeats a letter")
        unknown = set(out) - set("".join(terms)) - {"."}
        if unknown:
            raise ValueError(f"output letter(s) {''.join(sorted(unknown))} appear in no input")
        if "." in out and not any("." in t for t in terms):
            raise ValueError("'...' in the output but in no input")
    else:
        counts = {c: "".join(terms).count(c) for c in set("".join(terms)) - {"."}}
        out = ("." if any("." in t for t in terms) else "") + "".join(sorted(c for c, n in counts.items() if n == 1))
    return terms, out


class Einsum(OpDef):
    """``torch.einsum(equation, *operands)``: letters name axes, '...' the broadcast batch axes; the shape rule
    checks every letter's size across operands (size 1 broadcasts)."""

    name: ClassVar = "einsum"
    symmetry: ClassVar = Pinned("an einsum contraction")
    positional: ClassVar = ("equation",)
    arity: ClassVar = None
    family: ClassVar = "index"
    equation: str

    @field_validator("equation")
    @classmethod
    def _valid(cls, v: str) -> str:
        parse_equation(v)
        return v.replace(" ", "")

    def sizes(self, inputs: list[TensorType]) -> tuple[dict[str, Dim], tuple[Dim, ...]]:
        """Each letter's size and the broadcast '...' shape; OpError when the operands disagree."""
        terms, _ = parse_equation(self.equation)
        if len(terms) != len(inputs):
            raise OpError(f"einsum: {self.equation!r} has {len(terms)} operand(s), got {len(inputs)} tensor(s)",
                          "give one comma-separated term before '->' per tensor input")
        sizes: dict[str, Dim] = {}
        ellipsis = TensorType(shape=())
        for term, t in zip(terms, inputs, strict=True):
            letters = term.replace(".", "")
            if t.rank < len(letters) or ("." not in term and t.rank != len(letters)):
                raise OpError(f"einsum: term {term.replace('.', '...')!r} does not fit the operand {t}",
                              f"write one letter per axis of the operand ({t.rank}), or '...' for the leading ones")
            cut = term.index(".") if "." in term else len(term)
            extra = t.rank - len(letters)
            dims = dict(zip(term[:cut], t.shape[:cut], strict=True))
            dims.update(zip(term[cut + 1:], t.shape[cut + extra:], strict=True))
            for c, d in dims.items():
                have = sizes.get(c, 1)
                if have != d and d != 1 and have != 1:
                    raise OpError(f"einsum: letter {c!r} has size {have} in one operand and {d} in {t}",
                                  "a letter names one size in every operand (or 1 to broadcast): use a different "
                                  "letter for axes of different sizes")
                sizes[c] = d if have == 1 else have
            part = t.with_shape(t.shape[cut:cut + extra])
            ellipsis = broadcast(self, ellipsis.model_copy(update={"dtype": t.dtype}), part)
        if len({t.dtype for t in inputs}) > 1:
            raise OpError(f"einsum: operands' dtypes differ: {', '.join(str(t) for t in inputs)}",
                          "declare or compute the operands with one dtype")
        return sizes, ellipsis.shape

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        sizes, batch = self.sizes(inputs)
        _, out = parse_equation(self.equation)
        shape: list[Dim] = []
        for c in out:
            shape.extend(batch if c == "." else (sizes[c],))
        return [inputs[0].with_shape(tuple(shape))]

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        sizes, batch = self.sizes(inputs)
        macs: Dim = 1
        for d in (*sizes.values(), *batch):
            macs = macs * d
        return Cost(macs=macs if len(inputs) > 1 else 0, activations=outputs[0].numel())


OPS = (IndexSelect, Gather, Roll, Where, Tril, Triu, Cumsum, RepeatInterleave, Einsum)
