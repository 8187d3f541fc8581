"""Elementwise activations. Each is a small declaration; the shape rule is shared."""

from __future__ import annotations

from typing import ClassVar

from archdsl.ir.types import TensorType
from archdsl.ops.base import OpDef, Trait

_EW = frozenset({Trait.ELEMENTWISE})


class Elementwise(OpDef):
    """Base of unary elementwise ops: output type equals input type."""

    family: ClassVar = "activation"
    traits: ClassVar = _EW

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        return [inputs[0]]


class ReLU(Elementwise):
    """max(x, 0)."""

    name: ClassVar = "relu"
    traits: ClassVar = _EW | {Trait.HOMOGENEOUS}


class Sigmoid(Elementwise):
    """1 / (1 + exp(-x))."""

    name: ClassVar = "sigmoid"


class Tanh(Elementwise):
    """tanh(x)."""

    name: ClassVar = "tanh"
    traits: ClassVar = _EW | {Trait.ODD}


OPS = (ReLU, Sigmoid, Tanh)
