"""The PyTorch lowering table: one rule per op class, looked up by class (never by name string)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

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
    """How one op class becomes PyTorch source, and the facts about its result the code generator uses.

    ``fresh``: the result is a new tensor its own backward never reads, so a single use may overwrite it
    (torchvision's ReLU(inplace=True) after a BatchNorm, ``out += identity``): one allocation and one memory
    pass less (about 5% of a ResNet-50 forward on CPU). For an op with the EVAL_IDENTITY trait (dropout,
    stochastic depth) the eval-mode result *is* the input, so its result counts as fresh only where its input
    is fresh and used by it alone.

    ``inplace``: the in-place form of an attribute-free ELEMENTWISE op (the op's trait says overwriting an
    input is meaningful), ``{0}`` being the tensor overwritten and ``{1}``... the other inputs. The code
    generator uses it only on a fresh input of the result's type that nothing else reads. A form is exact
    under autograd as written when the in-place op's backward reads its *result* or nothing (``relu_``,
    ``sigmoid_``, ``add_``); where it reads the overwritten *input* (``silu_``, ``hardswish_``), autograd would
    clone that input first (slower than out-of-place), so the form goes in place only when the input does not
    require grad: ``F.silu({0}, inplace=not {0}.requires_grad)`` (eval under no_grad/inference_mode, frozen
    weights). Every form computes bitwise the same outputs and gradients as the out-of-place call.
    """

    call: CallRule
    module: ModuleRule | None = None
    fresh: bool = False
    inplace: str | None = None


RULES: dict[type[OpDef], Lowering] = {}
_C = TypeVar("_C", bound=Callable[..., str])


def lowering(*ops: type[OpDef], module: Callable[..., str] | None = None, fresh: bool | set = False,
             inplace: Mapping[type[Any], str] | None = None) -> Callable[[_C], _C]:
    """Register ``call`` (and optionally a module constructor) as the lowering of ``ops``.

    ``fresh`` is True for all of ``ops`` or the set of those whose results are fresh; ``inplace`` maps op
    classes to their in-place forms.
    """

    def register(call: _C) -> _C:
        for op in ops:
            if op in RULES:
                raise RuntimeError(f"{op.__name__} has two torch lowerings")
            is_fresh = op in fresh if isinstance(fresh, set) else fresh
            # rules take their own op class (Conv2d), narrower than CallRule's OpDef; the table is keyed by
            # exact class, so a rule only ever receives instances of a class it was registered for
            RULES[op] = Lowering(cast(CallRule, call), cast("ModuleRule | None", module), is_fresh,
                                 (inplace or {}).get(op))
        return call

    return register


def rule_for(op: OpDef) -> Lowering:
    """The lowering of ``op``'s exact class; KeyError when missing."""
    rule = RULES.get(type(op))
    if rule is None:            # the rule modules are imported on first need: the op's own family's, else all
        from archdsl.backends.torch import rules

        rules.load_family(type(op).__module__.rpartition(".")[2])
        rule = RULES.get(type(op))
        if rule is None:
            rules.load()
            rule = RULES[type(op)]
    return rule
