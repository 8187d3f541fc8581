"""Tensor constructors and buffers: values the model computes once, at build time, from its attributes alone.

``arange``, ``zeros``, ``ones``, ``full`` and ``eye`` take no tensor inputs; every op applied only to such values
is a build-time constant too, so backends compute the whole expression once (the PyTorch backend in
``__init__``, kept as a non-persistent buffer so it moves with ``.to(device)``; ONNX as constants). ``Buffer``
names such an expression as the module's buffer (``register_buffer``), in the state_dict when persistent:
timm's ``attention_bias_idxs``, Swin's ``relative_position_index``.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import field_validator

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.base import Cost, OpDef, ParamSpec, Trait
from archdsl.symmetry.contract import Pinned

DType = Literal["float32", "float64", "float16", "bfloat16", "int64", "int32", "bool"]
INT_DTYPES = ("int64", "int32")
Number = bool | int | float
_CONSTANT = Pinned("a build-time constant")


def number_dtype(*values: Number) -> str:
    """The dtype torch gives a Python scalar (or several): bool, int64 or float32 (the default float)."""
    if all(isinstance(v, bool) for v in values):
        return "bool"
    if all(isinstance(v, int) for v in values):
        return "int64"
    return "float32"


def check_shape(v: tuple[int, ...]) -> tuple[int, ...]:
    """Constructor sizes are positive integers (known when the model is built)."""
    if any(d <= 0 for d in v):
        raise ValueError(f"sizes must be positive, got {v}")
    return v


class Constructor(OpDef):
    """Base of ops that make a tensor from their attributes alone (no tensor inputs, no parameters)."""

    arity: ClassVar = 0
    family: ClassVar = "construct"
    symmetry: ClassVar = _CONSTANT

    def out_type(self) -> TensorType:
        """The tensor this constructor makes."""
        raise OpError(f"{self.name} has no shape rule", "`archdsl ops` lists the tensor constructors "
                      "(family construct) that can be used")

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if inputs:
            raise OpError(f"{self.name} takes no tensor inputs, got {len(inputs)}",
                          f"call it on its own (`m = {self.name}(...)`), not in a pipe `x |> {self.name}(...)`")
        return [self.out_type()]

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        return Cost(macs=0, activations=0)                  # made once, at build time


class Arange(Constructor):
    """``arange(end)`` or ``arange(start, end, step)``: evenly spaced values, int64 for integer arguments."""

    name: ClassVar = "arange"
    positional: ClassVar = ("start", "end", "step")
    start: int | float
    end: int | float | None = None
    step: int | float = 1
    dtype: DType | None = None

    @field_validator("step")
    @classmethod
    def _step(cls, v: int | float) -> int | float:
        if v == 0 or not math.isfinite(v):
            raise ValueError(f"step must be a non-zero finite number, got {v}")
        return v

    def bounds(self) -> tuple[int | float, int | float]:
        """(start, end): ``arange(5)`` is ``arange(0, 5)``."""
        return (0, self.start) if self.end is None else (self.start, self.end)

    def size(self) -> int:
        """Number of values, ceil((end - start) / step), as torch computes it."""
        start, end = self.bounds()
        return max(0, math.ceil((end - start) / self.step))

    def out_type(self) -> TensorType:
        n = self.size()
        if n <= 0:
            start, end = self.bounds()
            raise OpError(f"arange({start}, {end}, {self.step}) is empty", hint="check the order of start and end")
        return TensorType(shape=(n,), dtype=self.dtype or number_dtype(*self.bounds(), self.step))


class Zeros(Constructor):
    """A tensor of ``shape`` filled with 0 (float32 unless ``dtype`` says otherwise)."""

    name: ClassVar = "zeros"
    positional: ClassVar = ("shape",)
    shape: tuple[int, ...]
    dtype: DType = "float32"

    @field_validator("shape")
    @classmethod
    def _shape(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        return check_shape(v)

    def out_type(self) -> TensorType:
        return TensorType(shape=self.shape, dtype=self.dtype)


class Ones(Zeros):
    """A tensor of ``shape`` filled with 1 (float32 unless ``dtype`` says otherwise)."""

    name: ClassVar = "ones"


class Full(Constructor):
    """A tensor of ``shape`` filled with ``value``; the dtype follows the value (bool, int64, float32) as in torch."""

    name: ClassVar = "full"
    positional: ClassVar = ("shape", "value")
    shape: tuple[int, ...]
    value: Number
    dtype: DType | None = None

    @field_validator("shape")
    @classmethod
    def _shape(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        return check_shape(v)

    @field_validator("value")
    @classmethod
    def _finite(cls, v: Number) -> Number:
        if isinstance(v, float) and math.isnan(v):
            raise ValueError("the fill value must not be NaN")
        return v

    def out_type(self) -> TensorType:
        return TensorType(shape=self.shape, dtype=self.dtype or number_dtype(self.value))


class Eye(Constructor):
    """The ``n`` x ``m`` identity matrix (``m`` defaults to ``n``)."""

    name: ClassVar = "eye"
    positional: ClassVar = ("n", "m")
    n: int
    m: int | None = None
    dtype: DType = "float32"

    @field_validator("n", "m")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be positive, got {v}")
        return v

    def out_type(self) -> TensorType:
        return TensorType(shape=(self.n, self.m or self.n), dtype=self.dtype)


class Buffer(OpDef):
    """A build-time tensor kept as a module buffer, named where it is assigned: ``idx = Buffer(expr, persistent=false)``.

    The input must be computable when the model is built (constructors and ops on them, never an input or a
    parameter; ``idx = Buffer(persistent=false)`` then ``expr |> idx`` also works). It is in the state_dict iff ``persistent``
    (then it is declared like a parameter, with the initialiser ``computed``, and loaded weights replace it).
    """

    name: ClassVar = "buffer"
    positional: ClassVar = ("persistent",)
    family: ClassVar = "construct"
    traits: ClassVar = frozenset({Trait.BUFFER})
    symmetry: ClassVar = _CONSTANT
    persistent: bool = True

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        if not all(isinstance(d, int) for d in x.shape):
            raise OpError(f"buffer needs a tensor of known size, got {x}",
                          hint="a buffer is computed when the model is built, before any input exists")
        return [x]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        if not self.persistent:
            return {}
        x = inputs[0]
        return {"": ParamSpec(tuple(x.shape), "computed", dtype=x.dtype, buffer=True)}

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        return Cost(macs=0, activations=0)


OPS = (Arange, Zeros, Ones, Full, Eye, Buffer)
