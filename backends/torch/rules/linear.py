"""Lowering of Linear to nn.Linear."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import ctor
from archdsl.ir.types import TensorType
from archdsl.ops.linear import Linear, last_dim


def _linear_module(op: Linear, ins: list[TensorType]) -> str:
    return ctor("nn.Linear", last_dim(op, ins[0]), op.out_features, bias=op.bias)


@lowering(Linear, module=_linear_module)
def _linear(op: Linear, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{ref}({args[0]})"
