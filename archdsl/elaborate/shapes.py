"""Shape unification: declared tensor types (``[N, C, H, W]``) against the tensors that arrive."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from archdsl.elaborate.scope import Scope
from archdsl.elaborate.session import Session
from archdsl.elaborate.values import Tensor, describe
from archdsl.errors import ShapeError
from archdsl.ir.dims import SymDim
from archdsl.ir.types import DTYPES, Span, TensorType
from archdsl.syntax import ast as A


class Shapes:
    """Evaluates declared tensor types and unifies them with actual tensors, binding dim names in a scope."""

    def __init__(self, session: Session, evaluate: Callable[[A.Expr, Scope], Any]) -> None:
        self.session = session
        self.evaluate = evaluate

    def input_type(self, texpr: A.TensorTypeExpr, scope: Scope) -> TensorType:
        """A model input type: unbound names become symbols."""
        dims = []
        for d in texpr.dims:
            if isinstance(d, A.Name) and not scope.get_local(d.id)[0]:
                sym = SymDim.symbol(d.id)
                scope.names[d.id] = sym
                scope.used.add(d.id)
                dims.append(sym)
                continue
            value = self.dim(d, scope)
            if isinstance(value, int) and value < 0:
                raise self.session.error(f"a dimension must not be negative, got {value}", d.span)
            dims.append(value)
        return TensorType(shape=tuple(dims), dtype=self.dtype(texpr))

    def dim(self, d: A.Expr, scope: Scope) -> int | SymDim:
        """A declared dim's value: an int or a symbolic size."""
        value = self.evaluate(d, scope)
        if isinstance(value, bool) or not isinstance(value, (int, SymDim)):
            raise self.session.error(f"a dimension must be an int or a symbol, got {describe(value)}", d.span)
        return value

    def dtype(self, texpr: A.TensorTypeExpr) -> str:
        """The declared dtype (float32 by default)."""
        dt = texpr.dtype or "float32"
        if dt not in DTYPES:
            close = difflib.get_close_matches(dt, DTYPES, n=1)
            raise self.session.error(f"unknown dtype '{dt}'", texpr.span,
                                     f"did you mean '{close[0]}'?" if close else None)
        return dt

    def unify(self, texpr: A.TensorTypeExpr, tensor: Tensor, scope: Scope, what: str, where: Span,
              call_span: Span | None) -> None:
        """Match a declared type against an actual tensor, binding unbound dim names."""
        actual = tensor.type
        dtype = self.dtype(texpr)
        if len(texpr.dims) != actual.rank or dtype != actual.dtype:
            declared = declared_text(texpr)
            if len(texpr.dims) != actual.rank:
                message = f"{what} expects a rank-{len(texpr.dims)} tensor {declared}, got the rank-{actual.rank} " \
                          f"tensor {actual}"
            else:
                message = f"{what} expects {dtype} {declared}, got {actual.dtype} {actual}"
            raise self._mismatch(message, what, tensor, where, call_span)
        for i, (d, got) in enumerate(zip(texpr.dims, actual.shape, strict=False)):
            if isinstance(d, A.Name) and not scope.get_local(d.id)[0]:
                scope.names[d.id] = got
                scope.used.add(d.id)
                continue
            want = self.dim(d, scope)
            if want != got:
                said = dim_text(d) if dim_text(d) == str(want) else f"{dim_text(d)} = {want}"
                raise self._mismatch(f"{what} expects {declared_text(texpr)}, got {actual}: dim {i} should be "
                                     f"{said} but is {got}", what, tensor, where, call_span)

    def _mismatch(self, message: str, what: str, tensor: Tensor, where: Span, call_span: Span | None) -> ShapeError:
        notes = [(f"{what} is declared here", where)]
        notes += [(f"the tensor {tensor.type} comes from here", tensor.span)] if tensor.span else []
        return self.session.error(message, call_span or where, cls=ShapeError, notes=notes)


def declared_text(texpr: A.TensorTypeExpr) -> str:
    """``[N, C*2, H, W]`` as declared."""
    return "[" + ", ".join(dim_text(d) for d in texpr.dims) + "]"


def dim_text(d: A.Expr) -> str:
    """A declared dim as written: names, numbers and arithmetic on them."""
    if isinstance(d, A.Name):
        return d.id
    if isinstance(d, A.Num):
        return str(d.value)
    if isinstance(d, A.BinOp) and d.op in ("+", "-", "*", "//", "%"):
        left, right = dim_text(d.left), dim_text(d.right)
        wrap = d.op in ("*", "//", "%")
        left = f"({left})" if wrap and isinstance(d.left, A.BinOp) and d.left.op in ("+", "-") else left
        right = f"({right})" if isinstance(d.right, A.BinOp) and (wrap or d.op == "-") else right
        return f"{left} {d.op} {right}" if not wrap else f"{left}{d.op}{right}"
    return "…"
