"""Lowerings of dense layers to nn.Linear and nn.Bilinear."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import ctor
from archdsl.ir.types import TensorType
from archdsl.ops.linear import Bilinear, Linear, last_dim


def _linear_module(op: Linear, ins: list[TensorType]) -> str:
    return ctor("nn.Linear", last_dim(op, ins[0]), op.out_features, bias=op.bias)


@lowering(Linear, module=_linear_module, fresh=True)
def _linear(op: Linear, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{ref}({args[0]})"


def _bilinear_module(op: Bilinear, ins: list[TensorType]) -> str:
    in1, in2 = op.features(ins)
    return ctor("nn.Bilinear", in1, in2, op.out_features, bias=op.bias)


@lowering(Bilinear, module=_bilinear_module)
def _bilinear(op: Bilinear, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{ref}({args[0]}, {args[1]})"
