"""Lowerings of elementwise activations to torch functions."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.ir.types import TensorType
from archdsl.ops.activation import ReLU, Sigmoid, Tanh
from archdsl.ops.base import OpDef

_FUNCTIONS = {ReLU: "F.relu", Sigmoid: "torch.sigmoid", Tanh: "torch.tanh"}


@lowering(*_FUNCTIONS)
def _unary(op: OpDef, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{_FUNCTIONS[type(op)]}({args[0]})"
