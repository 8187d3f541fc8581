"""Activations: elementwise nonlinearities (one small declaration each) and softmax over an axis."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import field_validator

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.base import OpDef, ParamSpec, PositiveInt, Trait, norm_axis
from archdsl.symmetry.contract import Pointwise

_EW = frozenset({Trait.ELEMENTWISE})
FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")


def expect_float(op: OpDef, x: TensorType) -> None:
    """Raise OpError unless ``x`` has a floating-point dtype."""
    if x.dtype not in FLOAT_DTYPES:
        raise OpError(f"{op.name} expects a floating-point tensor, got {x}",
                      hint="integer tensors (token ids) go through an Embedding first")


class Elementwise(OpDef):
    """Base of unary elementwise ops: output type equals input type."""

    family: ClassVar = "activation"
    traits: ClassVar = _EW
    symmetry: ClassVar = Pointwise()           # scaling as the traits allow: ReLU positive, tanh signs

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        expect_float(self, inputs[0])
        return [inputs[0]]


class ReLU(Elementwise):
    """max(x, 0)."""

    name: ClassVar = "relu"
    traits: ClassVar = _EW | {Trait.HOMOGENEOUS}


class ReLU6(Elementwise):
    """min(max(x, 0), 6)."""

    name: ClassVar = "relu6"


class LeakyReLU(Elementwise):
    """x for x >= 0, negative_slope * x otherwise."""

    name: ClassVar = "leaky_relu"
    positional: ClassVar = ("negative_slope",)
    traits: ClassVar = _EW | {Trait.HOMOGENEOUS}
    negative_slope: float = 0.01


class PReLU(Elementwise):
    """LeakyReLU with a learned slope ``weight``: one shared (num_parameters=1) or one per channel (axis 1)."""

    name: ClassVar = "prelu"
    symmetry: ClassVar = Pointwise(params=(("weight", 1),))   # per-channel slopes move with the channels
    positional: ClassVar = ("num_parameters",)
    traits: ClassVar = _EW | {Trait.HOMOGENEOUS}
    num_parameters: PositiveInt = 1
    init: float = 0.25

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        expect_float(self, x)
        if self.num_parameters != 1:
            channels = x.shape[1] if x.rank >= 2 else None
            if channels != self.num_parameters:
                raise OpError(f"prelu with num_parameters={self.num_parameters} needs that many channels on "
                              f"axis 1, got {x}", hint="use num_parameters=1 for one shared slope")
        return [x]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        axis = "channel" if self.num_parameters > 1 else "none"
        return {"weight": ParamSpec((self.num_parameters,), f"constant(value={self.init})", axis=axis)}


class ELU(Elementwise):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""

    name: ClassVar = "elu"
    positional: ClassVar = ("alpha",)
    alpha: float = 1.0


class GELU(Elementwise):
    """x * Phi(x), exact ('none') or with the tanh approximation ('tanh')."""

    name: ClassVar = "gelu"
    positional: ClassVar = ("approximate",)
    approximate: Literal["none", "tanh"] = "none"


class SiLU(Elementwise):
    """x * sigmoid(x) (swish)."""

    name: ClassVar = "silu"


class Mish(Elementwise):
    """x * tanh(softplus(x))."""

    name: ClassVar = "mish"


class Sigmoid(Elementwise):
    """1 / (1 + exp(-x))."""

    name: ClassVar = "sigmoid"


class Hardsigmoid(Elementwise):
    """relu6(x + 3) / 6."""

    name: ClassVar = "hardsigmoid"


class Hardswish(Elementwise):
    """x * relu6(x + 3) / 6."""

    name: ClassVar = "hardswish"


class Tanh(Elementwise):
    """tanh(x)."""

    name: ClassVar = "tanh"
    traits: ClassVar = _EW | {Trait.ODD}


class Softplus(Elementwise):
    """log(1 + exp(beta * x)) / beta, linear above ``threshold`` (in units of beta * x)."""

    name: ClassVar = "softplus"
    positional: ClassVar = ("beta", "threshold")
    beta: float = 1.0
    threshold: float = 20.0

    @field_validator("beta")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("must not be zero")
        return v


class LogSigmoid(Elementwise):
    """log(sigmoid(x))."""

    name: ClassVar = "logsigmoid"


class Softmax(OpDef):
    """exp(x) / sum(exp(x)) along axis ``dim`` (required: PyTorch's implicit axis is deprecated)."""

    name: ClassVar = "softmax"
    symmetry: ClassVar = Pointwise()           # permutation-equivariant on every axis; no scaling
    positional: ClassVar = ("dim",)
    family: ClassVar = "activation"
    dim: int

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        expect_float(self, inputs[0])
        norm_axis(self, self.dim, inputs[0].rank)
        return [inputs[0]]


class LogSoftmax(Softmax):
    """log(softmax(x)) along axis ``dim``, computed stably."""

    name: ClassVar = "log_softmax"


OPS = (ReLU, ReLU6, LeakyReLU, PReLU, ELU, GELU, SiLU, Mish, Sigmoid, Hardsigmoid, Hardswish, Tanh, Softplus,
       LogSigmoid, Softmax, LogSoftmax)
