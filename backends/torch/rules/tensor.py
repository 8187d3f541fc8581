"""Lowerings of arithmetic and tensor plumbing."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import fn
from archdsl.ir.types import TensorType
from archdsl.ops import tensor as T
from archdsl.ops.base import OpDef

_INFIX = {T.Add: "+", T.Sub: "-", T.Mul: "*", T.Div: "/", T.MatMul: "@"}
_SCALAR = {"add": "{x} + {c}", "sub": "{x} - {c}", "rsub": "{c} - {x}", "mul": "{x} * {c}", "div": "{x} / {c}",
           "rdiv": "{c} / {x}", "pow": "{x} ** {c}", "neg": "-{x}"}


@lowering(*_INFIX, fresh={T.Add}, inplace={T.Add: "{0}.add_({1})"})    # add commutes exactly
def _infix(op: OpDef, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{args[0]} {_INFIX[type(op)]} {args[1]}"


@lowering(T.AddN)
def _add_n(op: T.AddN, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return " + ".join(args)


@lowering(T.ScalarArith)
def _scalar(op: T.ScalarArith, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    whole = ins[0].dtype in ("int64", "int32", "bool") and op.value.is_integer()
    value = repr(int(op.value)) if whole else repr(op.value)     # x - 3 keeps an integer tensor integer
    return "(" + _SCALAR[op.fn].format(x=args[0], c=value) + ")"


@lowering(T.Flatten)
def _flatten(op: T.Flatten, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"torch.flatten({args[0]}, {op.start_dim}, {op.end_dim})"


@lowering(T.ReduceMean, T.ReduceSum)
def _reduce(op: T.Reduce, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    name = "torch.mean" if isinstance(op, T.ReduceMean) else "torch.sum"
    return fn(name, args[0], dim=op.axes(ins[0].rank), keepdim=op.keepdim)
