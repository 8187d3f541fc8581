"""Shape unification: declared tensor types (``[N, C, H, W]``) against the tensors that arrive."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeGuard, cast

from archdsl.elaborate.scope import Scope
from archdsl.elaborate.session import Session
from archdsl.elaborate.values import Tensor, describe
from archdsl.errors import ShapeError
from archdsl.ir.dims import Dim, SymDim, linear_form
from archdsl.ir.symbols import pattern_note
from archdsl.ir.types import DTYPES, Span, TensorType
from archdsl.syntax import ast as A
from archdsl.syntax.printer import format_expr


class Shapes:
    """Evaluates declared tensor types and unifies them with actual tensors, binding dim names in a scope."""

    def __init__(self, session: Session, evaluate: Callable[[A.Expr, Scope], Any]) -> None:
        self.session = session
        self.evaluate = evaluate
        self.shortcuts = session.shortcuts

    def input_type(self, texpr: A.TensorTypeExpr, scope: Scope, where: A.Expr | None = None) -> TensorType:
        """A model input type: unbound names become symbols, alone (``H``) or in a pattern (``32*P``, solved
        from the input's size when it binds); ``where H % 32 == 0`` makes ``H`` the size ``32*(H//32)``, so
        arithmetic knows it is a multiple of 32."""
        rules = self.where_rules(where)
        dims: list[Dim] = []
        for d in texpr.dims:
            if isinstance(d, A.Rest):
                raise self.session.error("a model input needs every dim; '...' is for block inputs and outputs",
                                         d.span, "name the dims instead: `[N, C, H, W]`")
            if isinstance(d, A.Name) and not scope.get_local(d.id)[0]:
                sym: Dim = SymDim.symbol(d.id)
                if d.id in rules:
                    k, r = rules.pop(d.id)
                    sym = k * (sym // k) + r
                scope.names[d.id] = sym
                scope.used.add(d.id)
                dims.append(sym)
                continue
            fresh = free_names(d, scope)
            for name in fresh:
                scope.names[name] = SymDim.symbol(name)
                scope.used.add(name)
            value = self.dim(d, scope)
            if fresh and (linear_form(value) is None or len(fresh) > 1):
                raise self.session.error(
                    f"the input size {dim_text(d)} does not determine {' and '.join(sorted(fresh))}", d.span,
                    "write a new size name alone ([N, 3, H, W]) or as a pattern in one name ([N, 3, 32*P, 32*Q], "
                    "2*H + 1)")
            if isinstance(value, int) and value < 0:
                raise self.session.error(f"a dimension must not be negative, got {value}", d.span,
                                     "check the arithmetic that computes it")
            dims.append(value)
        if rules:
            name = next(iter(rules))
            raise self.session.error(f"'where' constrains '{name}', which is not a size this input names alone",
                                     where.span if where is not None else None, "constrain the input's own sizes: [N, 3, H, W] where H % 32 == 0")
        return TensorType(shape=tuple(dims), dtype=self.dtype(texpr))

    def where_rules(self, where: A.Expr | None) -> dict[str, tuple[int, int]]:
        """``H % 32 == 0 and W % 32 == 16`` -> ``{"H": (32, 0), "W": (32, 16)}``; other conditions are errors."""
        if where is None:
            return {}
        if isinstance(where, A.BinOp) and where.op == "and":
            return {**self.where_rules(where.left), **self.where_rules(where.right)}
        e = where
        if (isinstance(e, A.BinOp) and e.op == "==" and isinstance(e.left, A.BinOp) and e.left.op == "%"
                and isinstance(e.left.left, A.Name) and _int(e.left.right) and _int(e.right)
                and e.left.right.value > 0 and 0 <= e.right.value < e.left.right.value):
            return {e.left.left.id: (int(e.left.right.value), int(e.right.value))}     # ints (_int)
        raise self.session.error("a model input's 'where' states sizes as 'S % k == r' (0 <= r < k), joined by "
                                 "'and'", where.span, "for example: in image: [N, 3, H, W] where H % 32 == 0")

    def check_where(self, where: A.Expr, scope: Scope, what: str, span: Span, call_span: Span | None) -> None:
        """A block input's ``where``: true for the sizes that arrived, provably (``32*P % 32 == 0``)."""
        if self.evaluate(where, scope) is not True:
            raise self.session.error(f"{what} needs {format_expr(where)}, which the sizes that arrive do not "
                                     "provably satisfy", call_span or span, cls=ShapeError,
                                     hint="declare the model input as a pattern ([N, 3, 32*P, 32*Q]) or with "
                                          "its own 'where'", notes=[(f"{what} is declared here", span)])

    def dim(self, d: A.Expr, scope: Scope) -> int | SymDim:
        """A declared dim's value: an int or a symbolic size."""
        value = self.evaluate(d, scope)
        if isinstance(value, bool) or not isinstance(value, (int, SymDim)):
            raise self.session.error(f"a dimension must be an int or a symbol, got {describe(value)}", d.span,
                                     "dims are ints, names (N, C) or arithmetic on them (C * 4)")
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
        if self.shortcuts and texpr.dtype is None and actual.dtype == "float32" \
                and self.plain_names(texpr.dims, actual.shape, scope):
            return
        dtype = self.dtype(texpr)
        pairs = self._aligned(texpr, actual.rank)
        if pairs is None or dtype != actual.dtype:
            declared = declared_text(texpr)
            if pairs is None and any(isinstance(d, A.Rest) for d in texpr.dims):
                message = f"{what} expects a tensor of rank {len(texpr.dims) - 1} or more {declared}, got the " \
                          f"rank-{actual.rank} tensor {actual}"
            elif pairs is None:
                message = f"{what} expects a rank-{len(texpr.dims)} tensor {declared}, got the rank-{actual.rank} " \
                          f"tensor {actual}"
            else:
                message = f"{what} expects {dtype} {declared}, got {actual.dtype} {actual}"
            raise self._mismatch(message, what, tensor, where, call_span)
        for i, d in pairs:
            got = actual.shape[i]
            if isinstance(d, A.Name) and not scope.get_local(d.id)[0]:
                scope.names[d.id] = got
                scope.used.add(d.id)
                continue
            fresh = free_names(d, scope)
            if fresh:
                self.solve(d, fresh, got, scope, lambda why, i=i, d=d: self._mismatch(
                    f"{what} expects {declared_text(texpr)}, got {actual}: dim {i} should be {dim_text(d)}, {why}",
                    what, tensor, where, call_span))
                continue
            want = self.dim(d, scope)
            if want != got:
                said = dim_text(d) if dim_text(d) == str(want) else f"{dim_text(d)} = {want}"
                raise self._mismatch(f"{what} expects {declared_text(texpr)}, got {actual}: dim {i} should be "
                                     f"{said} but is {got}", what, tensor, where, call_span)

    def plain_names(self, dims: tuple, shape: tuple, scope: Scope) -> bool:
        """:meth:`unify`'s usual case, ``[N, c]``: one name per dim, each bound here to its size or already equal
        to it (an int). False when anything else is met: unify then does it all (the names bound so far are
        bound as it binds them, so it finds them equal)."""
        if len(dims) != len(shape):
            return False
        names = scope.names
        for d, got in zip(dims, shape, strict=True):
            if type(d) is not A.Name:
                return False
            key = d.id
            if key in names:                # (Scope.get_local's first step)
                value = names[key]
                if type(value) is not int or type(got) is not int or value != got:
                    return False
                scope.used.add(key)
                continue
            found, value = scope.get_local(key)
            if found:
                return False
            names[key] = got
            scope.used.add(key)
        return True

    def _aligned(self, texpr: A.TensorTypeExpr, rank: int) -> list[tuple[int, A.Expr]] | None:
        """(axis, declared dim) pairs for a tensor of ``rank``; ``...`` takes the dims between its neighbours.
        None when the rank does not fit."""
        dims = texpr.dims
        rests = [i for i, d in enumerate(dims) if isinstance(d, A.Rest)]
        if len(rests) > 1:
            raise self.session.error("a tensor type holds at most one '...'", dims[rests[1]].span,
                                     "one '...' stands for any number of dims: [N, ..., C]")
        if not rests:
            return [(i, d) for i, d in enumerate(dims) if not isinstance(d, A.Rest)] if len(dims) == rank else None
        k = rests[0]
        tail = len(dims) - k - 1
        if rank < len(dims) - 1:
            return None
        return [(i, d) for i, d in enumerate(dims[:k]) if not isinstance(d, A.Rest)] + \
            [(rank - tail + j, d) for j, d in enumerate(dims[k + 1:]) if not isinstance(d, A.Rest)]   # (one '...')

    def solve(self, d: A.Expr, fresh: list[str], got: int | SymDim, scope: Scope, fail: Callable) -> None:
        """Bind the one new name of a pattern dim (``2*H2``, ``32*P``) so that it equals ``got``, exactly."""
        probe = scope.child()
        for name in fresh:
            probe.names[name] = SymDim.symbol(f"{name}'")        # a placeholder no input size can be named
        form = linear_form(self.dim(d, probe))
        if form is None or len(fresh) > 1:
            raise fail(f"a pattern must be linear in one new name (a*S + b), not in {', '.join(fresh)}")
        _, a, b = form
        value = (got - b) // a
        if value * a + b != got:
            known = isinstance(got, int) or isinstance((got - b) % a, int)
            raise fail(f"but {got} is {'not' if known else 'not known to be'} {pattern_note(a, b)}")
        scope.names[fresh[0]] = value
        scope.used.add(fresh[0])

    def _mismatch(self, message: str, what: str, tensor: Tensor, where: Span, call_span: Span | None) -> ShapeError:
        notes = [(f"{what} is declared here", where)]
        notes += [(f"the tensor {tensor.type} comes from here", tensor.span)] if tensor.span else []
        return cast(ShapeError, self.session.error(message, call_span or where, "change the layer that makes this "
                                                   "tensor, or the declared type", cls=ShapeError, notes=notes))


def _int(e: A.Expr | None) -> TypeGuard[A.Num]:
    return isinstance(e, A.Num) and isinstance(e.value, int) and not isinstance(e.value, bool)


def free_names(d: A.Expr, scope: Scope) -> list[str]:
    """Names in a dim expression that nothing binds yet (``P`` in ``32*P``), in order; [] for a bare name."""
    out: list[str] = []
    if isinstance(d, A.Name):
        return out
    stack: list[A.Expr] = [d]       # left to right, without a recursive closure (its cycle would keep the scope)
    while stack:
        e = stack.pop()
        if isinstance(e, A.Name):
            if e.id not in out and not scope.get_local(e.id)[0] and e.id not in scope.namespace.lets:
                out.append(e.id)
        elif isinstance(e, A.BinOp):
            stack += (e.right, e.left)
        elif isinstance(e, A.UnaryOp):
            stack.append(e.operand)
    return out


def declared_text(texpr: A.TensorTypeExpr) -> str:
    """``[N, C*2, H, W]`` as declared."""
    return "[" + ", ".join(dim_text(d) for d in texpr.dims) + "]"


def dim_text(d: A.Expr | A.Rest) -> str:
    """A declared dim as written: names, numbers and arithmetic on them."""
    if isinstance(d, A.Name):
        return d.id
    if isinstance(d, A.Rest):
        return "..."
    if isinstance(d, A.Num):
        return str(d.value)
    if isinstance(d, A.BinOp) and d.op in ("+", "-", "*", "//", "%"):
        left, right = dim_text(d.left), dim_text(d.right)
        wrap = d.op in ("*", "//", "%")
        left = f"({left})" if wrap and isinstance(d.left, A.BinOp) and d.left.op in ("+", "-") else left
        right = f"({right})" if isinstance(d.right, A.BinOp) and (wrap or d.op == "-") else right
        return f"{left} {d.op} {right}" if not wrap else f"{left}{d.op}{right}"
    return "…"
