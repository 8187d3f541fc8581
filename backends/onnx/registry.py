"""The ONNX lowering table: one rule per op class, looked up by class (never by name string).

A rule receives the per-node :class:`~archdsl.backends.onnx.emitter.NodeEmitter` (which makes ONNX nodes,
constants and run-time shape tensors), the op (attributes resolved), the ONNX values of its tensor inputs,
and the op's parameters as ONNX values keyed by their local name (``weight``, ``running_mean``). It returns
the ONNX value of each output. Ops with no single ONNX op lower to an exact decomposition in their rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from archdsl.ops.base import OpDef

if TYPE_CHECKING:
    import onnx_ir as ir

    from archdsl.backends.onnx.emitter import NodeEmitter

# rule(e, op, xs, params) -> the output value (or a sequence of them for multi-output ops)
Rule = Callable[["NodeEmitter", OpDef, list["ir.Value"], Mapping[str, "ir.Value"]], "ir.Value | Sequence[ir.Value]"]

RULES: dict[type[OpDef], Rule] = {}
_R = TypeVar("_R", bound=Callable[..., Any])


def lowering(*ops: type[OpDef]) -> Callable[[_R], _R]:
    """Register ``rule`` as the ONNX lowering of each class in ``ops``."""

    def register(rule: _R) -> _R:
        for op in ops:
            if op in RULES:
                raise RuntimeError(f"{op.__name__} has two ONNX lowerings")
            # a rule's op parameter is its own class (PixelShuffle), narrower than Rule's OpDef; the table is
            # keyed by exact class, so a rule only ever receives instances of a class it was registered for
            RULES[op] = cast(Rule, rule)
        return rule

    return register


def rules() -> dict[type[OpDef], Rule]:
    """The complete table (every rule module imported)."""
    from archdsl.backends.onnx import rules as modules

    modules.load()
    return RULES


def rule_for(op: OpDef) -> Rule | None:
    """The lowering of ``op``'s exact class, or None when it has none."""
    return rules().get(type(op))


def missing() -> list[type[OpDef]]:
    """Op classes of the registry with no ONNX lowering."""
    from archdsl.ops.registry import all_ops

    table = rules()
    return [op for op in all_ops() if op not in table]
