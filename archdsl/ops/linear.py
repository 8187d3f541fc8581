"""Dense layers over the last axis: Linear (x W^T + b) and Bilinear (x1^T W x2 + b)."""

from __future__ import annotations

from typing import ClassVar

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.base import IN, OUT, ConvForm, Cost, OpDef, ParamSpec, PositiveInt, Trait
from archdsl.symmetry.contract import Dense, Pinned


def last_dim(op: OpDef, x: TensorType) -> int:
    """The (known) size of the last axis, the feature axis of dense ops."""
    if x.rank == 0:
        raise OpError(f"{op.name} needs at least one axis, got a scalar",
                      "features are on the last axis: reshape the scalar to [1] first")
    d = x.shape[-1]
    if not isinstance(d, int):
        raise OpError(f"{op.name} needs a known feature size on the last axis, got {x}",
                      "declare the last axis of the input with a number or a parameter bound to one; after convs "
                      "over a free-size image, pool to a known size first: `|> AdaptiveAvgPool2d(1) |> flatten(1)`")
    return d


class Linear(OpDef):
    """y = x W^T + b over the last axis; x: [..., in] -> [..., out]; weight [out, in]."""

    name: ClassVar = "linear"
    symmetry: ClassVar = Dense()
    positional: ClassVar = ("out_features",)
    traits: ClassVar = frozenset({Trait.AFFINE})
    family: ClassVar = "linear"
    out_features: PositiveInt
    bias: bool = True

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        last_dim(self, inputs[0])
        return [inputs[0].with_shape((*inputs[0].shape[:-1], self.out_features))]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        fan_in = last_dim(self, inputs[0])
        out = {"weight": ParamSpec((self.out_features, fan_in), "kaiming_uniform(a=sqrt(5))", fan_in=fan_in,
                                   layout=(OUT, IN))}
        if self.bias:
            out["bias"] = ParamSpec((self.out_features,), "uniform(fan_in)", axis="feature", fan_in=fan_in,
                                    layout=(OUT,))
        return out

    def output_channel_axis(self, x: TensorType) -> int | None:
        """The last axis."""
        return x.rank - 1

    def conv_form(self, x: TensorType) -> ConvForm | None:
        """On [N, C] a linear layer is a convolution with no spatial dims (on [N, T, C] it is not channels-first)."""
        if x.rank != 2 or not isinstance(x.shape[1], int):
            return None
        return ConvForm((), (), (), (), 1, x.shape[1], self.out_features, "zeros", "weight",
                        "bias" if self.bias else None)

    def input_channel_axis(self, x: TensorType) -> int | None:
        """The last axis."""
        return x.rank - 1

    def with_bias(self) -> Linear:
        """The same layer with a bias."""
        return self.model_copy(update={"bias": True})

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        return Cost(macs=outputs[0].numel() * last_dim(self, inputs[0]), activations=outputs[0].numel())


class Bilinear(OpDef):
    """y_k = x1^T W_k x2 + b_k on two inputs [..., in1], [..., in2] -> [..., out]; weight [out, in1, in2]."""

    name: ClassVar = "bilinear"
    symmetry: ClassVar = Pinned("bilinear: the symmetry of a form in two inputs is not derived")
    positional: ClassVar = ("out_features",)
    arity: ClassVar = 2
    family: ClassVar = "linear"
    out_features: PositiveInt
    bias: bool = True

    def features(self, inputs: list[TensorType]) -> tuple[int, int]:
        """(in1, in2), after checking the two inputs' leading axes agree."""
        a, b = inputs
        in1, in2 = last_dim(self, a), last_dim(self, b)
        if a.shape[:-1] != b.shape[:-1] or a.dtype != b.dtype:
            raise OpError(f"bilinear needs inputs with the same leading axes and dtype, got {a.dtype} {a} and "
                          f"{b.dtype} {b}", "only the last (feature) axes may differ: reshape or expand the "
                          "inputs to the same batch axes")
        return in1, in2

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        self.features(inputs)
        return [inputs[0].with_shape((*inputs[0].shape[:-1], self.out_features))]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        in1, in2 = self.features(inputs)
        # nn.Bilinear: every entry ~ U(-1/sqrt(in1), 1/sqrt(in1))
        init = f"uniform(bound={in1 ** -0.5!r})"
        out = {"weight": ParamSpec((self.out_features, in1, in2), init, fan_in=in1)}
        if self.bias:
            out["bias"] = ParamSpec((self.out_features,), init, axis="feature", fan_in=in1)
        return out

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        in1, in2 = self.features(inputs)
        return Cost(macs=outputs[0].numel() * in1 * in2, activations=outputs[0].numel())


OPS = (Linear, Bilinear)
