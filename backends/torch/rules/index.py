"""Lowerings of constructors, buffers, index ops, comparisons, clamping and max/min/arg reductions.

Constructors run in ``__init__`` (see backends/torch/constants.py), so their source makes a CPU tensor that the
module then carries as a buffer.
"""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import fn
from archdsl.ir.types import TensorType
from archdsl.ops import compare as C
from archdsl.ops import construct as K
from archdsl.ops import index as X
from archdsl.ops.base import OpDef


def _dtype(name: str) -> str:
    return f"torch.{name}"


def _number(value: object, t: TensorType) -> str:
    """A Python number for a tensor of type ``t`` (ints for integer tensors, so torch keeps the dtype)."""
    if t.dtype in K.INT_DTYPES and isinstance(value, float) and value.is_integer():
        return repr(int(value))
    return repr(value)


@lowering(K.Arange)
def _arange(op: K.Arange, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    start, end = op.bounds()
    return f"torch.arange({start!r}, {end!r}, {op.step!r}, dtype={_dtype(op.out_type().dtype)})"


@lowering(K.Zeros, K.Ones)
def _filled(op: K.Zeros, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"torch.{op.name}({op.shape!r}, dtype={_dtype(op.dtype)})"


@lowering(K.Full)
def _full(op: K.Full, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"torch.full({op.shape!r}, {op.value!r}, dtype={_dtype(op.out_type().dtype)})"


@lowering(K.Eye)
def _eye(op: K.Eye, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"torch.eye({op.n}, {op.m or op.n}, dtype={_dtype(op.dtype)})"


@lowering(K.Buffer)
def _buffer(op: K.Buffer, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    # codegen (backends/torch/constants.py) registers the buffer in __init__; its reference is the value
    return str(ref) if ref is not None else args[0]


@lowering(X.IndexSelect)
def _index_select(op: X.IndexSelect, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    x, index = args
    if ins[1].rank == 1:
        return fn("torch.index_select", x, str(op.dim), index)
    return f"{x}[{':, ' * op.dim}{index}]"


@lowering(X.Gather)
def _gather(op: X.Gather, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("torch.gather", args[0], str(op.dim), args[1])


@lowering(X.Roll)
def _roll(op: X.Roll, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("torch.roll", args[0], shifts=op.shift_list(), dims=op.dim_list())


@lowering(X.Where)
def _where(op: X.Where, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    values = iter(args[1:])
    chosen = [next(values) if v is None else repr(v) for v in (op.input, op.other)]
    if op.input is not None and op.other is not None:       # torch.where needs a tensor among the values
        dtype = _dtype(K.number_dtype(op.input, op.other))
        chosen[0] = f"torch.tensor({op.input!r}, dtype={dtype})"
    return f"torch.where({args[0]}, {', '.join(chosen)})"


@lowering(X.Tril, X.Triu)
def _triangle(op: X.Triangle, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"torch.{op.name}({args[0]}, {op.diagonal})"


@lowering(X.Cumsum)
def _cumsum(op: X.Cumsum, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("torch.cumsum", args[0], str(op.dim))


@lowering(X.RepeatInterleave)
def _repeat_interleave(op: X.RepeatInterleave, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("torch.repeat_interleave", args[0], str(op.repeats), dim=op.dim)


@lowering(X.Einsum)
def _einsum(op: X.Einsum, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("torch.einsum", repr(op.equation), *args)


@lowering(C.Eq, C.Ne, C.Lt, C.Le, C.Gt, C.Ge)
def _compare(op: C.Compare, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    other = args[1] if op.value is None else _number(op.value, ins[0])
    return f"({args[0]} {op.symbol} {other})"


@lowering(C.Abs)
def _abs(op: OpDef, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"torch.abs({args[0]})"


@lowering(C.Clamp)
def _clamp(op: C.Clamp, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    bounds = [f"{k}={_number(v, ins[0])}" for k, v in (("min", op.min), ("max", op.max)) if v is not None]
    return f"torch.clamp({args[0]}, {', '.join(bounds)})"


@lowering(C.Amax, C.Amin)
def _extreme(op: C.Amax, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn(f"torch.{op.name}", args[0], dim=op.axes(ins[0].rank), keepdim=op.keepdim)


@lowering(C.Argmax, C.Argmin)
def _arg(op: C.ArgReduce, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn(f"torch.{op.name}", args[0], dim=op.dim, keepdim=op.keepdim)
