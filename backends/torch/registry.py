"""The PyTorch lowering table: one rule per op class, looked up by class (never by name string)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from archdsl.ir.types import TensorType
from archdsl.ops.base import OpDef

# call(op, args, ref, in_types) -> a Python expression for the forward pass.
#   args: source expressions of the tensor inputs; ref: the module (or parameter) reference, e.g.
#   "self.layer1[0].conv1", or None for ops without parameters.
CallRule = Callable[[OpDef, list[str], "str | None", list[TensorType]], str]
# module(op, in_types) -> constructor source of the nn.Module that owns the op's parameters.
ModuleRule = Callable[[OpDef, list[TensorType]], str]


@dataclass(frozen=True)
class Lowering:
    """How one op class becomes PyTorch source."""

    call: CallRule
    module: ModuleRule | None = None


RULES: dict[type[OpDef], Lowering] = {}


def lowering(*ops: type[OpDef], module: ModuleRule | None = None) -> Callable[[CallRule], CallRule]:
    """Register ``call`` (and optionally a module constructor) as the lowering of ``ops``."""

    def register(call: CallRule) -> CallRule:
        for op in ops:
            if op in RULES:
                raise RuntimeError(f"{op.__name__} has two torch lowerings")
            RULES[op] = Lowering(call, module)
        return call

    return register


def rule_for(op: OpDef) -> Lowering:
    """The lowering of ``op``'s exact class; KeyError when missing."""
    from archdsl.backends.torch import rules

    rules.load()
    return RULES[type(op)]
