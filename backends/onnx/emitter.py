"""Making ONNX nodes with onnx_ir: constants, run-time shape arithmetic and names for one lowered IR node."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

from archdsl.ir.dims import Dim, SymDim
from archdsl.ir.symbols import SymbolSource
from archdsl.ir.types import TensorType
from archdsl.ops.shape import symbol_axes

DTYPES = {"float32": ir.DataType.FLOAT, "float64": ir.DataType.DOUBLE, "float16": ir.DataType.FLOAT16,
          "bfloat16": ir.DataType.BFLOAT16, "int64": ir.DataType.INT64, "int32": ir.DataType.INT32,
          "bool": ir.DataType.BOOL}
INT64_MAX = 2**63 - 1
_ARITH = {ast.Add: "Add", ast.Sub: "Sub", ast.Mult: "Mul", ast.FloorDiv: "Div", ast.Mod: "Mod"}


def onnx_shape(t: TensorType) -> ir.Shape:
    """The ONNX shape of an IR type: ints stay, symbolic dims become dim_params (``N``, ``H*W``)."""
    return ir.Shape([d if isinstance(d, int) else ir.SymbolicDim(str(d)) for d in t.shape])


def typed(value: ir.Value, t: TensorType) -> ir.Value:
    """Give ``value`` the dtype and shape of ``t`` (documentation for viewers; shape inference checks it)."""
    value.dtype = DTYPES[t.dtype]
    value.shape = onnx_shape(t)
    return value


def _attrs(attrs: dict[str, Any]) -> list[ir.Attr]:
    """onnx_ir attributes; bools become ints, tuples lists, None values are left out."""
    clean: dict[str, Any] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, tuple):
            value = list(value)
        clean[key] = value
    return ir.convenience.convert_attributes(clean)


class Emitter:
    """The graph being built: nodes in order, initialisers, and a cache of small constants."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[ir.Node] = []
        self.initializers: dict[str, ir.Value] = {}
        self._consts: dict[tuple, ir.Value] = {}
        self._names: dict[str, set[str]] = {"node": set(), "value": set()}
        self.symbol_sources: dict[str, tuple[ir.Value, SymbolSource]] = {}   # symbol -> (graph input, where)
        self.symbol_values: dict[str, ir.Value] = {}                        # computed once, on first use

    def reserve(self, names: Sequence[str]) -> None:
        """Keep value names for later (the IR's own value names, given to rule outputs afterwards)."""
        self._names["value"].update(names)

    def unique(self, name: str, kind: str = "value") -> str:
        """``name``, or ``name_2``, ``name_3`` ... when taken (value and node names are graph-wide)."""
        base, k, taken = name, 1, self._names[kind]
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        return name

    def initializer(self, name: str, tensor: ir.TensorProtocol) -> ir.Value:
        """Add an initialiser named ``name`` holding ``tensor``."""
        unique = self.unique(name)
        value = ir.Value(name=unique, shape=ir.Shape(tensor.shape),  # type: ignore[arg-type]  # iterates its dims
                         type=ir.TensorType(tensor.dtype), const_value=tensor)
        self.initializers[unique] = value
        return value

    def const(self, array: np.ndarray, dtype: ir.DataType | None = None) -> ir.Value:
        """A constant initialiser (shared between uses of the same value)."""
        if dtype is not None:
            array = array.astype(dtype.numpy())
        tensor = ir.tensor(array, dtype=dtype)
        key = (tensor.dtype, tuple(tensor.shape), tensor.tobytes())
        if key not in self._consts:
            flat = array.reshape(-1).tolist() if array.size <= 4 else f"{array.size}"
            label = "_".join(str(v) for v in flat) if isinstance(flat, list) else flat
            self._consts[key] = self.initializer(f"const_{tensor.dtype.name.lower()}_{label}", tensor)
        return self._consts[key]


class NodeEmitter:
    """What a lowering rule sees: node-making helpers whose names start with the IR node's name."""

    def __init__(self, emitter: Emitter, prefix: str, ins: list[TensorType], outs: list[TensorType],
                 doc: str | None = None, metadata: dict[str, str] | None = None) -> None:
        self.emitter = emitter
        self.prefix = prefix
        self.ins = ins
        self.outs = outs
        self.doc = doc
        self.metadata = metadata
        self.made: list[ir.Node] = []
        self._shapes: dict[int, ir.Value] = {}

    @property
    def opset(self) -> int:
        """The target opset of the default domain."""
        return self.emitter.opset

    # -- nodes ----------------------------------------------------------------------------------
    def op(self, op_type: str, *inputs: ir.Value | None, outputs: int = 1, **attrs: Any) -> Any:
        """One ONNX node; returns its output value (a tuple when ``outputs`` > 1)."""
        name = self.emitter.unique(self.prefix if not self.made else f"{self.prefix}/{op_type}", "node")
        args = list(inputs)
        while args and args[-1] is None:       # trailing optional inputs are left out, not written as ""
            args.pop()
        node = ir.Node("", op_type, args, attributes=_attrs(attrs), num_outputs=outputs, name=name,
                       doc_string=self.doc, metadata_props=dict(self.metadata) if self.metadata else None)
        for i, value in enumerate(node.outputs):
            value.name = self.emitter.unique(f"{name}/{op_type}" if outputs == 1 else f"{name}/{op_type}:{i}")
        self.emitter.nodes.append(node)
        self.made.append(node)
        return node.outputs[0] if outputs == 1 else tuple(node.outputs)

    # -- constants ------------------------------------------------------------------------------
    def i64(self, values: Sequence[int] | int) -> ir.Value:
        """An int64 constant: a 1-D list, or a scalar for an int."""
        return self.emitter.const(np.asarray(values, dtype=np.int64))

    def scalar(self, value: float, dtype: str = "float32") -> ir.Value:
        """A 0-d constant of an IR dtype (used for broadcasting arithmetic)."""
        return self.emitter.const(np.asarray(value, dtype=np.float64), DTYPES[dtype])

    def full(self, shape: Sequence[int], value: float, dtype: str = "float32") -> ir.Value:
        """A constant tensor of ``shape`` filled with ``value`` (LayerNorm scale without affine, ...)."""
        return self.emitter.const(np.full(tuple(shape), value, dtype=np.float64), DTYPES[dtype])

    # -- run-time shapes ---------------------------------------------------------------------------
    def axis_size(self, x: ir.Value, axis: int) -> ir.Value:
        """``x.shape[axis]`` as a 1-element int64 tensor."""
        return self.op("Shape", x, start=axis, end=axis + 1)

    def shape_of(self, x: ir.Value) -> ir.Value:
        """``x.shape`` as an int64 tensor (one Shape node per input per IR node)."""
        key = id(x)
        if key not in self._shapes:
            self._shapes[key] = self.op("Shape", x)
        return self._shapes[key]

    def size(self, d: Dim, x: ir.Value, t: TensorType) -> ir.Value:
        """Size ``d`` as a 1-element int64 tensor, computed from ``x``'s shape (``t``) where symbolic."""
        if isinstance(d, int):
            return self.i64([d])
        if d in t.shape:
            return self.axis_size(x, t.shape.index(d))
        axes = symbol_axes(t)
        return self._expr(ast.parse(str(d), mode="eval").body, x, axes)

    def _expr(self, node: ast.AST, x: ir.Value, axes: dict[str, int]) -> ir.Value:
        if isinstance(node, ast.Constant):
            return self.i64([int(node.value)])  # type: ignore[arg-type]  # a dim's constants are ints
        if isinstance(node, ast.Name):
            return self.axis_size(x, axes[node.id]) if node.id in axes else self.symbol(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return self.op("Neg", self._expr(node.operand, x, axes))
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            # sizes are non-negative, so ONNX's truncating integer Div is floor division here
            return self.op(_ARITH[type(node.op)], self._expr(node.left, x, axes), self._expr(node.right, x, axes))
        raise ValueError(f"cannot compute the size {ast.unparse(node)} at run time")

    def symbol(self, name: str) -> ir.Value:
        """Symbol ``name`` as a 1-element int64 tensor, computed once from the graph input that determines it."""
        values = self.emitter.symbol_values
        if name not in values:
            if name not in self.emitter.symbol_sources:
                raise ValueError(f"the size {name} cannot be computed from the graph's inputs")
            x, src = self.emitter.symbol_sources[name]
            v = self.axis_size(x, src.axis)
            if src.offset:
                v = self.op("Sub", v, self.i64([src.offset]))
            values[name] = self.op("Div", v, self.i64([src.scale])) if src.scale != 1 else v
        return values[name]

    def sizes(self, dims: Sequence[Dim], x: ir.Value, t: TensorType) -> ir.Value:
        """A 1-D int64 shape tensor for ``dims``: one constant when every size is known, else a Concat."""
        pieces: list[ir.Value] = []
        run: list[int] = []
        for d in dims:
            if isinstance(d, int):
                run.append(d)
                continue
            if run:
                pieces.append(self.i64(run))
                run = []
            pieces.append(self.size(d, x, t))
        if run or not pieces:
            pieces.append(self.i64(run))
        return pieces[0] if len(pieces) == 1 else self.op("Concat", *pieces, axis=0)

    def reshape(self, x: ir.Value, t: TensorType, dims: Sequence[Dim]) -> ir.Value:
        """Reshape ``x`` (type ``t``) to ``dims``: unknown sizes (-1 or symbolic) copied or computed."""
        target: list[Dim] = []
        zero = any(d == 0 for d in dims if isinstance(d, int))
        for i, d in enumerate(dims):
            if not zero and isinstance(d, SymDim) and i < t.rank and t.shape[i] == d:
                target.append(0)                        # ONNX: 0 copies the input's size on this axis
            else:
                target.append(d)
        return self.op("Reshape", x, self.sizes(target, x, t), allowzero=1 if zero else None)
