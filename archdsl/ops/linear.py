"""Dense layers: Linear over the last axis."""

from __future__ import annotations

from typing import ClassVar

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.base import Cost, OpDef, ParamSpec, Trait


def last_dim(op: OpDef, x: TensorType) -> int:
    """The (known) size of the last axis, the feature axis of dense ops."""
    if x.rank == 0:
        raise OpError(f"{op.name} needs at least one axis, got a scalar")
    d = x.shape[-1]
    if not isinstance(d, int):
        raise OpError(f"{op.name} needs a known feature size on the last axis, got {x}")
    return d


class Linear(OpDef):
    """y = x W^T + b over the last axis; x: [..., in] -> [..., out]; weight [out, in]."""

    name: ClassVar = "linear"
    positional: ClassVar = ("out_features",)
    traits: ClassVar = frozenset({Trait.AFFINE})
    family: ClassVar = "linear"
    out_features: int
    bias: bool = True

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        last_dim(self, inputs[0])
        return [inputs[0].with_shape((*inputs[0].shape[:-1], self.out_features))]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        fan_in = last_dim(self, inputs[0])
        out = {"weight": ParamSpec((self.out_features, fan_in), "kaiming_uniform(a=sqrt(5))", fan_in=fan_in)}
        if self.bias:
            out["bias"] = ParamSpec((self.out_features,), "uniform(fan_in)", axis="feature", fan_in=fan_in)
        return out

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        return Cost(macs=outputs[0].numel() * last_dim(self, inputs[0]), activations=outputs[0].numel())


OPS = (Linear,)
