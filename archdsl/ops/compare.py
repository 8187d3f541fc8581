"""Comparisons (bool results), absolute value, clamping, and max/min/argmax/argmin reductions.

``abs``, ``max`` and ``min`` are the spec language's built-ins on numbers, so the tensor ops are spelled as in
torch: ``absolute``, ``amax``, ``amin`` (``argmax``, ``argmin`` as they are).
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import field_validator, model_validator

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.base import OpDef, Trait, norm_axis
from archdsl.ops.construct import Number
from archdsl.ops.index import fits
from archdsl.ops.tensor import Reduce, broadcast, promote
from archdsl.symmetry.contract import Pinned, Pointwise, Reduction


class Compare(OpDef):
    """Base of elementwise comparisons: two tensors (broadcast), or a tensor and the number ``value``; -> bool."""

    positional: ClassVar = ("value",)
    arity: ClassVar = None
    family: ClassVar = "compare"
    symmetry: ClassVar = Pinned("a comparison makes a mask")
    symbol: ClassVar[str]
    value: Number | None = None

    @field_validator("value")
    @classmethod
    def _not_nan(cls, v: Number | None) -> Number | None:
        if isinstance(v, float) and math.isnan(v):
            raise ValueError("comparing with NaN is always false (or always true for ne)")
        return v

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        want = 1 if self.value is not None else 2
        if len(inputs) != want:
            raise OpError(f"{self.name} compares two tensors, or a tensor with a number: got {len(inputs)} "
                          f"tensor(s){' and the number ' + repr(self.value) if self.value is not None else ''}",
                          hint=f"{self.name}(a, b) or {self.name}(x, 0.0)")
        if want == 1:
            out = inputs[0]
        else:
            dtype = promote(self, *inputs)
            out = broadcast(self, *(t.model_copy(update={"dtype": dtype}) for t in inputs))
        return [TensorType(shape=out.shape, dtype="bool")]


class Eq(Compare):
    """a == b elementwise (bool)."""

    name: ClassVar = "eq"
    symbol: ClassVar = "=="


class Ne(Compare):
    """a != b elementwise (bool)."""

    name: ClassVar = "ne"
    symbol: ClassVar = "!="


class Lt(Compare):
    """a < b elementwise (bool)."""

    name: ClassVar = "lt"
    symbol: ClassVar = "<"


class Le(Compare):
    """a <= b elementwise (bool)."""

    name: ClassVar = "le"
    symbol: ClassVar = "<="


class Gt(Compare):
    """a > b elementwise (bool)."""

    name: ClassVar = "gt"
    symbol: ClassVar = ">"


class Ge(Compare):
    """a >= b elementwise (bool)."""

    name: ClassVar = "ge"
    symbol: ClassVar = ">="


class Abs(OpDef):
    """|x| elementwise (spelled ``absolute``: ``abs`` is the built-in on numbers); any numeric dtype."""

    name: ClassVar = "absolute"
    family: ClassVar = "compare"
    symmetry: ClassVar = Pointwise()
    traits: ClassVar = frozenset({Trait.ELEMENTWISE, Trait.HOMOGENEOUS})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if inputs[0].dtype == "bool":
            raise OpError(f"absolute needs numbers, got {inputs[0]}",
                          "a bool tensor is its own absolute value: drop abs, or make numbers with "
                          "where(mask, input=1.0, other=0.0) first")
        return [inputs[0]]


class Clamp(OpDef):
    """min(max(x, min), max) elementwise; either bound may be left out (integer tensors take integer bounds)."""

    name: ClassVar = "clamp"
    positional: ClassVar = ("min", "max")
    family: ClassVar = "compare"
    symmetry: ClassVar = Pointwise()
    traits: ClassVar = frozenset({Trait.ELEMENTWISE})
    min: int | float | None = None
    max: int | float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Clamp:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if any(isinstance(b, float) and math.isnan(b) for b in (self.min, self.max)):
            raise ValueError("a bound must not be NaN")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        if x.dtype == "bool":
            raise OpError(f"clamp needs numbers, got {x}", "make numbers of the bool tensor with where(mask, input=1.0, other=0.0) first")
        for b in (self.min, self.max):
            if b is not None and not fits(b, x.dtype):
                raise OpError(f"clamp: the bound {b!r} does not fit the {x.dtype} tensor {x}",
                              hint="integer tensors take integer bounds")
        return [x]


class Amax(Reduce):
    """Largest value over axes ``dim`` (None: every axis), as torch.amax."""

    name: ClassVar = "amax"
    family: ClassVar = "compare"
    traits: ClassVar = frozenset({Trait.HOMOGENEOUS})


class Amin(Reduce):
    """Smallest value over axes ``dim`` (None: every axis), as torch.amin."""

    name: ClassVar = "amin"
    family: ClassVar = "compare"
    traits: ClassVar = frozenset({Trait.HOMOGENEOUS})


class ArgReduce(OpDef):
    """Base of argmax/argmin: the int64 position of the extreme along ``dim`` (None: of the flattened x)."""

    positional: ClassVar = ("dim", "keepdim")
    family: ClassVar = "compare"
    symmetry: ClassVar = Reduction(axes=lambda op, t: tuple(range(t.rank)) if op.dim is None else (op.dim,))
    dim: int | None = None
    keepdim: bool = False

    def resolve(self, inputs: list[TensorType]) -> ArgReduce:
        if self.dim is None:
            return self
        return self.model_copy(update={"dim": norm_axis(self, self.dim, inputs[0].rank)})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        if x.dtype == "bool":
            raise OpError(f"{self.name} needs numbers, got {x}", "make numbers of the bool tensor with where(mask, input=1.0, other=0.0) first")
        if self.dim is None:
            shape = (1,) * x.rank if self.keepdim else ()
        else:
            axis = norm_axis(self, self.dim, x.rank)
            shape = tuple(1 if i == axis else d for i, d in enumerate(x.shape) if i != axis or self.keepdim)
        return [TensorType(shape=shape, dtype="int64")]


class Argmax(ArgReduce):
    """Position of the largest value along ``dim`` (the first one on ties), int64."""

    name: ClassVar = "argmax"


class Argmin(ArgReduce):
    """Position of the smallest value along ``dim`` (the first one on ties), int64."""

    name: ClassVar = "argmin"


OPS = (Eq, Ne, Lt, Le, Gt, Ge, Abs, Clamp, Amax, Amin, Argmax, Argmin)
