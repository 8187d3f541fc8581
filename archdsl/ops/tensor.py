"""Tensor plumbing and arithmetic: add, flatten, n-ary sum."""

from __future__ import annotations

from typing import ClassVar

from archdsl.errors import OpError
from archdsl.ir.dims import Dim
from archdsl.ir.types import TensorType
from archdsl.ops.base import OpDef, Trait, norm_axis


def broadcast(op: OpDef, a: TensorType, b: TensorType) -> TensorType:
    """NumPy broadcasting on (symbolic) shapes; equal dims or 1 on either side."""
    if a.dtype != b.dtype:
        raise OpError(f"{op.name}: dtypes differ: {a.dtype} and {b.dtype}")
    ra, rb = list(a.shape), list(b.shape)
    n = max(len(ra), len(rb))
    ra, rb = [1] * (n - len(ra)) + ra, [1] * (n - len(rb)) + rb
    out: list[Dim] = []
    for x, y in zip(ra, rb):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise OpError(f"{op.name}: shapes {a} and {b} do not broadcast (dim {x} vs {y})")
    return a.with_shape(tuple(out))


class Binary(OpDef):
    """Base of broadcasting binary ops on two tensors."""

    arity: ClassVar = 2
    family: ClassVar = "arith"
    traits: ClassVar = frozenset({Trait.ELEMENTWISE})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        return [broadcast(self, inputs[0], inputs[1])]


class Add(Binary):
    """a + b with broadcasting."""

    name: ClassVar = "add"
    traits: ClassVar = frozenset({Trait.ELEMENTWISE, Trait.LINEAR})


class AddN(OpDef):
    """Sum of several same-shaped tensors (the merge point of parallel branches)."""

    name: ClassVar = "add_n"
    arity: ClassVar = None
    family: ClassVar = "arith"
    traits: ClassVar = frozenset({Trait.ELEMENTWISE, Trait.LINEAR})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if not inputs:
            raise OpError("add_n needs at least one tensor")
        out = inputs[0]
        for t in inputs[1:]:
            out = broadcast(self, out, t)
        return [out]


class Flatten(OpDef):
    """Merge axes start_dim..end_dim into one (default: all but the batch axis)."""

    name: ClassVar = "flatten"
    positional: ClassVar = ("start_dim", "end_dim")
    family: ClassVar = "shape"
    traits: ClassVar = frozenset({Trait.LINEAR, Trait.SHAPE_ONLY})
    start_dim: int = 1
    end_dim: int = -1

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        if x.rank == 0:
            raise OpError("flatten needs at least one axis")
        a, b = norm_axis(self, self.start_dim, x.rank), norm_axis(self, self.end_dim, x.rank)
        if a > b:
            raise OpError(f"flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim}")
        merged: Dim = 1
        for d in x.shape[a:b + 1]:
            merged = merged * d
        return [x.with_shape((*x.shape[:a], merged, *x.shape[b + 1:]))]


OPS = (Add, AddN, Flatten)


class Sub(Binary):
    """a - b with broadcasting."""

    name: ClassVar = "sub"
    traits: ClassVar = frozenset({Trait.ELEMENTWISE, Trait.LINEAR})


class Mul(Binary):
    """a * b with broadcasting (bilinear: linear in each input)."""

    name: ClassVar = "mul"


class Div(Binary):
    """a / b with broadcasting."""

    name: ClassVar = "div"


class MatMul(OpDef):
    """a @ b with batch broadcasting: [..., n, k] @ [..., k, m] -> [..., n, m]."""

    name: ClassVar = "matmul"
    arity: ClassVar = 2
    family: ClassVar = "arith"

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        a, b = inputs
        if a.rank < 2 or b.rank < 2:
            raise OpError(f"matmul needs rank >= 2 on both sides, got {a} and {b}")
        if a.shape[-1] != b.shape[-2]:
            raise OpError(f"matmul: inner dims differ: {a} @ {b} ({a.shape[-1]} vs {b.shape[-2]})")
        batch = broadcast(self, a.with_shape(a.shape[:-2]), b.with_shape(b.shape[:-2]))
        return [a.with_shape((*batch.shape, a.shape[-2], b.shape[-1]))]

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]):
        from archdsl.ops.base import Cost

        return Cost(macs=outputs[0].numel() * inputs[0].shape[-1], activations=outputs[0].numel())


class ScalarArith(OpDef):
    """Tensor-scalar arithmetic: x+c, x-c, c-x, x*c, x/c, c/x, x**c, -x."""

    name: ClassVar = "scalar"
    positional: ClassVar = ("fn", "value")
    family: ClassVar = "arith"
    traits: ClassVar = frozenset({Trait.ELEMENTWISE})
    fn: str
    value: float = 0.0

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if self.fn not in ("add", "sub", "rsub", "mul", "div", "rdiv", "pow", "neg"):
            raise OpError(f"scalar: unknown function {self.fn!r}")
        return [inputs[0]]


OPS = OPS + (Sub, Mul, Div, MatMul, ScalarArith)
