"""Tensor arithmetic and plumbing: binary ops, n-ary sum, tensor-scalar ops, matmul, reductions, flatten."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import field_validator

from archdsl.errors import OpError
from archdsl.ir.dims import Dim
from archdsl.ir.types import TensorType
from archdsl.ops.activation import expect_float
from archdsl.ops.base import Cost, OpDef, Trait, norm_axis
from archdsl.symmetry.contract import Contraction, Pointwise, Reduction, Reshaped

# Both dtype-mismatch errors of arithmetic say the same thing.
DTYPE_HINT = ("declare both operands with one dtype; a bool mask becomes numbers with "
              "where(mask, input=1.0, other=0.0)")


def broadcast(op: OpDef, a: TensorType, b: TensorType) -> TensorType:
    """NumPy broadcasting on (symbolic) shapes; equal dims or 1 on either side."""
    if a.dtype != b.dtype:
        raise OpError(f"{op.name}: dtypes differ: {a.dtype} and {b.dtype}", DTYPE_HINT)
    ra, rb = list(a.shape), list(b.shape)
    n = max(len(ra), len(rb))
    ra, rb = [1] * (n - len(ra)) + ra, [1] * (n - len(rb)) + rb
    out: list[Dim] = []
    for x, y in zip(ra, rb, strict=True):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise OpError(f"{op.name}: shapes {a} and {b} do not broadcast (dim {x} vs {y})",
                          "sizes broadcast when they are equal or one of them is 1; the notes show which layer "
                          "makes each shape")
    return a.with_shape(tuple(out))


class Binary(OpDef):
    """Base of broadcasting binary ops on two tensors."""

    arity: ClassVar = 2
    family: ClassVar = "arith"
    traits: ClassVar = frozenset({Trait.ELEMENTWISE})
    symmetry: ClassVar = Pointwise()           # add/sub pass any scaling, mul/div none

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        a, b = inputs[0], inputs[1]
        dtype = promote(self, a, b)
        out = broadcast(self, a.model_copy(update={"dtype": dtype}), b.model_copy(update={"dtype": dtype}))
        if isinstance(self, Div) and dtype in ("int64", "int32", "bool"):
            return [out.model_copy(update={"dtype": "float32"})]          # true division, as in torch
        return [out]


_KIND = {"bool": 0, "int32": 1, "int64": 2}


def promote(op: OpDef, a: TensorType, b: TensorType) -> str:
    """torch's result dtype for a float tensor with an integer or bool one (the float), int32 with int64 (int64),
    bool with an integer (the integer); two different floating dtypes are an error (cast one explicitly)."""
    if a.dtype == b.dtype:
        return a.dtype
    if a.dtype in _KIND and b.dtype in _KIND:
        return a.dtype if _KIND[a.dtype] > _KIND[b.dtype] else b.dtype
    if (a.dtype in _KIND) != (b.dtype in _KIND):
        return b.dtype if a.dtype in _KIND else a.dtype
    raise OpError(f"{op.name}: dtypes differ: {a.dtype} and {b.dtype}", DTYPE_HINT)


class Add(Binary):
    """a + b with broadcasting."""

    name: ClassVar = "add"
    traits: ClassVar = frozenset({Trait.ELEMENTWISE, Trait.LINEAR})

    def sum_coefficients(self, n: int) -> tuple[float, ...] | None:
        """a + b."""
        return (1.0, 1.0)


class AddN(OpDef):
    """Sum of several same-shaped tensors (the merge point of parallel branches)."""

    name: ClassVar = "add_n"
    symmetry: ClassVar = Pointwise()
    arity: ClassVar = None
    family: ClassVar = "arith"
    traits: ClassVar = frozenset({Trait.ELEMENTWISE, Trait.LINEAR})

    def sum_coefficients(self, n: int) -> tuple[float, ...] | None:
        """a + b + ..."""
        return (1.0,) * n

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if not inputs:
            raise OpError("add_n needs at least one tensor", "write add_n([a, b, c]) (or a + b + c)")
        out = inputs[0]
        for t in inputs[1:]:
            out = broadcast(self, out, t)
        return [out]


class Flatten(OpDef):
    """Merge axes start_dim..end_dim into one (default: all but the batch axis)."""

    name: ClassVar = "flatten"
    symmetry: ClassVar = Reshaped()
    positional: ClassVar = ("start_dim", "end_dim")
    family: ClassVar = "shape"
    traits: ClassVar = frozenset({Trait.LINEAR, Trait.SHAPE_ONLY})
    start_dim: int = 1
    end_dim: int = -1

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        if x.rank == 0:
            raise OpError("flatten needs at least one axis", "a scalar is already flat: drop flatten, or "
                          "reshape it to [1]")
        a, b = norm_axis(self, self.start_dim, x.rank), norm_axis(self, self.end_dim, x.rank)
        if a > b:
            raise OpError(f"flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim}",
                          "swap them: flatten merges axes start_dim..end_dim (flatten(1) merges all but the batch)")
        merged: Dim = 1
        for d in x.shape[a:b + 1]:
            merged = merged * d
        return [x.with_shape((*x.shape[:a], merged, *x.shape[b + 1:]))]


class Sub(Binary):
    """a - b with broadcasting."""

    name: ClassVar = "sub"
    traits: ClassVar = frozenset({Trait.ELEMENTWISE, Trait.LINEAR})

    def sum_coefficients(self, n: int) -> tuple[float, ...] | None:
        """a - b."""
        return (1.0, -1.0)


class Mul(Binary):
    """a * b with broadcasting (bilinear: linear in each input)."""

    name: ClassVar = "mul"

    def scale_operands(self) -> tuple[tuple[int, int], ...]:
        """Either factor."""
        return ((0, 1), (1, 1))


class Div(Binary):
    """a / b with broadcasting."""

    name: ClassVar = "div"

    def scale_operands(self) -> tuple[tuple[int, int], ...]:
        """The divisor (x / c = x * c**-1)."""
        return ((1, -1),)


class MatMul(OpDef):
    """a @ b with batch broadcasting: [..., n, k] @ [..., k, m] -> [..., n, m]."""

    name: ClassVar = "matmul"
    symmetry: ClassVar = Contraction()
    arity: ClassVar = 2
    family: ClassVar = "arith"

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        a, b = inputs
        if a.rank < 2 or b.rank < 2:
            raise OpError(f"matmul needs rank >= 2 on both sides, got {a} and {b}",
                          "unsqueeze a vector to [1, n] or [n, 1] first; for a layer over the last axis use Linear")
        if a.shape[-1] != b.shape[-2]:
            raise OpError(f"matmul: inner dims differ: {a} @ {b} ({a.shape[-1]} vs {b.shape[-2]})",
                          "the last axis of a must equal the second-to-last of b: transpose(-2, -1) one operand")
        batch = broadcast(self, a.with_shape(a.shape[:-2]), b.with_shape(b.shape[:-2]))
        return [a.with_shape((*batch.shape, a.shape[-2], b.shape[-1]))]

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        return Cost(macs=outputs[0].numel() * inputs[0].shape[-1], activations=outputs[0].numel())


ScalarFn = Literal["add", "sub", "rsub", "mul", "div", "rdiv", "pow", "neg"]


# fn -> (scale, shift) of the affine map x -> scale * x + shift (None: 1 or 0)
_AFFINE_SCALAR = {"add": lambda c: (None, c), "sub": lambda c: (None, -c), "rsub": lambda c: (-1.0, c),
                  "mul": lambda c: (c, None), "div": lambda c: (1.0 / c, None), "neg": lambda c: (-1.0, None)}


class ScalarArith(OpDef):
    """Tensor-scalar arithmetic: x+c, x-c, c-x, x*c, x/c, c/x, x**c, -x."""

    name: ClassVar = "scalar"
    symmetry: ClassVar = Pointwise()           # x*c, x/c, -x pass any scaling; x+c none
    positional: ClassVar = ("fn", "value")
    family: ClassVar = "arith"
    traits: ClassVar = frozenset({Trait.ELEMENTWISE})
    fn: ScalarFn
    value: float = 0.0

    def has(self, trait: Trait) -> bool:
        """x*c, x/c and -x are linear; x+c, x-c and c-x are affine; all of these are uniform channel-affine maps."""
        if trait is Trait.LINEAR and self.fn in ("mul", "div", "neg"):
            return True
        if trait is Trait.AFFINE and self.fn in ("add", "sub", "rsub"):
            return True
        if trait is Trait.CHANNEL_AFFINE and self.fn in _AFFINE_SCALAR and (self.fn, self.value) != ("div", 0):
            return True
        return super().has(trait)

    def eval_affine_axis(self, x: TensorType) -> int | None:
        """Any axis (the scale and shift are uniform): 1 for channels-first tensors; None for pow/rdiv."""
        if self.fn not in _AFFINE_SCALAR or (self.fn == "div" and self.value == 0):
            return None
        return min(1, max(x.rank - 1, 0))

    def eval_affine(self, params: dict, x: TensorType) -> tuple[int, object, object]:
        """(axis, scale, shift) as floats (None for 1 and 0)."""
        axis = self.eval_affine_axis(x)
        if axis is None:
            raise OpError(f"scalar {self.fn} {self.value} is not affine",
                          "only + - * / by a non-zero number fold into a neighbouring linear layer")
        scale, shift = _AFFINE_SCALAR[self.fn](self.value)
        return axis, scale, shift

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        if x.dtype not in ("int64", "int32", "bool"):
            return [x]
        # integer tensors stay integer under +, -, * and ** by whole non-negative numbers (as in torch)
        whole = self.value.is_integer() and not (self.fn == "pow" and self.value < 0)
        if self.fn in ("div", "rdiv") or not whole:
            return [x.model_copy(update={"dtype": "float32"})]
        return [x.model_copy(update={"dtype": "int64"})] if x.dtype == "bool" else [x]


Axes = int | tuple[int, ...] | None


class Reduce(OpDef):
    """Base of reductions over axes ``dim`` (None: every axis), optionally keeping them as size 1."""

    positional: ClassVar = ("dim", "keepdim")
    symmetry: ClassVar = Reduction(axes=lambda op, t: op.axes(t.rank))
    family: ClassVar = "arith"
    traits: ClassVar = frozenset({Trait.LINEAR})
    floating: ClassVar[bool] = False            # needs a floating-point input
    dim: Axes = None
    keepdim: bool = False

    @field_validator("dim")
    @classmethod
    def _nonempty(cls, v: Axes) -> Axes:
        if v == ():
            raise ValueError("dim=() is ambiguous (torch reduces every axis); leave dim out to reduce every axis")
        return v

    def axes(self, rank: int) -> tuple[int, ...]:
        """The reduced axes, normalised and sorted; OpError on duplicates or out-of-range axes."""
        dims = tuple(range(rank)) if self.dim is None else (self.dim,) if isinstance(self.dim, int) else self.dim
        axes = tuple(norm_axis(self, d, rank) for d in dims)
        if len(set(axes)) != len(axes):
            raise OpError(f"{self.name}: axis repeated in dim={self.dim}",
                          "name each axis once (a negative axis counts from the end: -1 is the last)")
        return tuple(sorted(axes))

    def resolve(self, inputs: list[TensorType]) -> Reduce:
        return self.model_copy(update={"dim": self.axes(inputs[0].rank) or None})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        if self.floating:
            expect_float(self, x)
        axes = self.axes(x.rank)
        if self.keepdim:
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        else:
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return [x.with_shape(shape)]


class ReduceMean(Reduce):
    """Mean over axes ``dim``: ``mean(x, dim=(2, 3))`` is global average pooling."""

    name: ClassVar = "mean"
    floating: ClassVar = True


class ReduceSum(Reduce):
    """Sum over axes ``dim`` (spelled ``reduce_sum`` or ``ReduceSum``)."""

    name: ClassVar = "reduce_sum"


OPS = (Add, Sub, Mul, Div, AddN, ScalarArith, MatMul, ReduceMean, ReduceSum, Flatten)
