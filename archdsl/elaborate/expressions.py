"""Expression evaluation: scalars, dims, lists, comprehensions, templates, tensor arithmetic."""

from __future__ import annotations

import difflib
import itertools
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any

from archdsl.elaborate.builtins import BUILTINS, MAX_REPEAT
from archdsl.elaborate.loader import Namespace
from archdsl.elaborate.values import (
    Absent,
    BlockLayer,
    Layer,
    Named,
    OpLayer,
    ReparamLayer,
    SeqLayer,
    Tensor,
    describe,
    is_layer,
)
from archdsl.errors import ArchError, Diagnostic, ElaborationError, LimitError, OpError
from archdsl.ir.dims import SymDim
from archdsl.ir.types import Span
from archdsl.ops import tensor as T
from archdsl.ops.base import OpDef
from archdsl.ops.registry import lookup, spellings
from archdsl.syntax import ast as A

MAX_INT_BITS = 64
MAX_SYMBOLIC_TEXT = 2_000     # printed length of a symbolic size before arithmetic on it is refused
MAX_STEPS = 500_000          # comprehension items and built-in list elements, per elaboration


@dataclass(frozen=True)
class BlockRef:
    """A block name, not yet called."""

    block: A.BlockDef
    namespace: Namespace

    def describe(self) -> str:
        """For error messages."""
        return f"the block {self.block.name}"


@dataclass(frozen=True)
class OpRef:
    """An op name, not yet called (``relu`` in ``x |> relu``)."""

    op: type[OpDef]

    def describe(self) -> str:
        """For error messages."""
        return f"the op {self.op.__name__}"


@dataclass(frozen=True)
class NamespaceRef:
    """An import alias (``std`` in ``std.ConvBNAct``)."""

    namespace: Namespace

    def describe(self) -> str:
        """For error messages."""
        return f"the import alias of '{self.namespace.file}'"


@dataclass
class Scope:
    """Names visible inside one block application (or at a file's top level)."""

    namespace: Namespace
    names: dict[str, Any] = field(default_factory=dict)
    assigned: dict[str, Span] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    parent: Scope | None = None
    inputs: set[str] = field(default_factory=set)     # names bound by `in` statements

    def child(self) -> Scope:
        """A nested scope for comprehension variables."""
        return Scope(self.namespace, parent=self)

    def get_local(self, name: str) -> tuple[bool, Any]:
        """Look up ``name`` in this scope chain; (found, value)."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                scope.used.add(name)
                return True, scope.names[name]
            scope = scope.parent
        return False, None

    def local_names(self) -> list[str]:
        """Names bound in this scope chain."""
        out: list[str] = []
        scope: Scope | None = self
        while scope is not None:
            out += list(scope.names)
            scope = scope.parent
        return out


_SCALAR_OPS = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
# tensor (op) (tensor)
_TENSOR_BINOPS = {"+": T.Add, "-": T.Sub, "*": T.Mul, "/": T.Div, "@": T.MatMul}
# tensor (op) scalar  and  scalar (op) tensor
_SCALAR_RIGHT = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow"}
_SCALAR_LEFT = {"+": "add", "-": "rsub", "*": "mul", "/": "rdiv"}

_TEMPLATE = re.compile(r"\{([^{}]*)\}")


class ExpressionMixin:
    """Evaluates expressions; the application of layers lives in :class:`ApplyMixin`."""

    sources: dict[str, str]
    let_stack: list[tuple[str, A.Assign]]     # constants being evaluated, for cycle messages
    steps: int                                # work done so far, bounded by MAX_STEPS

    # -- errors -----------------------------------------------------------------------------
    def error(self, message: str, span: Span | None, hint: str | None = None, cls=ElaborationError, notes=()):
        return cls(Diagnostic(message, span, hint, notes=tuple(notes)), self.sources)

    def spend(self, n: int, span: Span | None) -> None:
        """Count ``n`` units of evaluation work; a spec may not make more than MAX_STEPS items in all."""
        self.steps += n
        if self.steps > MAX_STEPS:
            raise self.error(f"the spec makes more than {MAX_STEPS:,} list items in all while elaborating", span,
                             "are repeat counts or nested comprehensions much larger than intended?", cls=LimitError)

    # -- entry -------------------------------------------------------------------------------
    def evaluate(self, expr: A.Expr, scope: Scope) -> Any:
        """Evaluate one expression in ``scope``."""
        method = getattr(self, f"_eval_{type(expr).__name__}")
        return method(expr, scope)

    def _eval_Num(self, e: A.Num, scope: Scope) -> Any:
        if isinstance(e.value, int) and e.value.bit_length() > MAX_INT_BITS:
            raise self.error(f"the number {e.value} is larger than 64 bits", e.span, cls=LimitError)
        if isinstance(e.value, float) and not math.isfinite(e.value):
            raise self.error(f"the number {e.value} is not finite", e.span)
        return e.value

    def _eval_Const(self, e: A.Const, scope: Scope) -> Any:
        return e.value

    def _eval_Str(self, e: A.Str, scope: Scope) -> str:
        return self.fill_template(e.value, scope, e.span)

    def fill_template(self, text: str, scope: Scope, span: Span) -> str:
        """Replace each ``{expr}`` in a string with its value (``"denselayer{i+1}"``)."""
        if "{" not in text:
            return text
        from archdsl.syntax.parser import parse_expression

        def fill(m: re.Match) -> str:
            # the literal's opening quote sits at span.column; braces inside it are one line long
            at = span.column + 1 + m.start(1) if span.line == span.end_line else span.column
            try:
                expr = parse_expression(m.group(1), span.file, span.line, at)
            except ArchError as exc:     # re-raised with the sources, for the excerpt
                raise type(exc)(exc.diagnostics, self.sources) from None
            value = self.evaluate(expr, scope)
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise self.error(f"a template part must be an int, a float or a string, got {describe(value)}", span)
            return repr(value) if isinstance(value, float) else str(value)

        if "{" in _TEMPLATE.sub("", text) or "}" in _TEMPLATE.sub("", text):
            raise self.error(f"unbalanced braces in the name template {text!r}", span)
        return _TEMPLATE.sub(fill, text)

    def _eval_Name(self, e: A.Name, scope: Scope) -> Any:
        found, value = scope.get_local(e.id)
        if found:
            return value
        return self.lookup_global(e.id, scope, e.span)

    def lookup_global(self, name: str, scope: Scope, span: Span, what: str = "name") -> Any:
        """Constants, blocks, import aliases, built-ins and ops, in that order (``what`` names the role in errors)."""
        ns = scope.namespace
        let = ns.find_let(name)
        if let is not None:
            return self.let_value(name, let[0], let[1])
        block = ns.find_block(name)
        if block is not None:
            return BlockRef(*block)
        if name in ns.aliases:
            return NamespaceRef(ns.aliases[name])
        if name in BUILTINS:
            return BUILTINS[name]
        op = lookup(name)
        if op is not None:
            return OpRef(op)
        candidates = scope.local_names() + ns.visible_names() + list(BUILTINS) + spellings()
        close = difflib.get_close_matches(name, candidates, n=1)
        raise self.error(f"unknown {what} '{name}'", span, f"did you mean '{close[0]}'?" if close else
                         "define it as a block parameter, a layer (`name = ...`) or a top-level `let`")

    def eval_callee(self, expr: A.Expr, scope: Scope, what: str) -> Any:
        """Evaluate the function of a call or the layer of a pipe; an unknown bare name is reported as ``what``."""
        if isinstance(expr, A.Name):
            found, value = scope.get_local(expr.id)
            return value if found else self.lookup_global(expr.id, scope, expr.span, what)
        return self.evaluate(expr, scope)

    def let_value(self, name: str, item: A.Assign, ns: Namespace) -> Any:
        """Evaluate a top-level constant once (lazily, so definition order does not matter)."""
        stack = self.let_stack
        if ns.let_values.get(name) is _EVALUATING:
            raise self._let_cycle(name, stack)
        if name not in ns.let_values:
            ns.let_values[name] = _EVALUATING
            stack.append((name, item))
            try:
                ns.let_values[name] = self.evaluate(item.value, Scope(ns))
            finally:
                stack.pop()
                if ns.let_values[name] is _EVALUATING:
                    del ns.let_values[name]
        return ns.let_values[name]

    def _let_cycle(self, name: str, stack: list[tuple[str, A.Assign]]) -> ElaborationError:
        """The error for constants defined in terms of each other, naming the whole chain."""
        start = next((i for i, (n, _) in enumerate(stack) if n == name), 0)
        cycle = stack[start:]
        if len(cycle) <= 1:
            return self.error(f"constant '{name}' is defined in terms of itself", cycle[0][1].span if cycle else None)
        chain = " -> ".join(f"'{n}'" for n, _ in cycle + [cycle[0]])
        notes = [(f"'{n}' is defined here", item.span) for n, item in cycle[1:]]
        return self.error(f"constants are defined in terms of each other: {chain}", cycle[0][1].span,
                          "give one of them a value that does not refer back", notes=notes)

    def _eval_Attr(self, e: A.Attr, scope: Scope) -> Any:
        obj = self.evaluate(e.obj, scope)
        if not isinstance(obj, NamespaceRef):
            raise self.error(f"'.{e.name}' needs an import alias on the left, got {describe(obj)}", e.span)
        return self.lookup_global(e.name, Scope(obj.namespace), e.span)

    # -- containers --------------------------------------------------------------------------
    def _eval_ListLit(self, e: A.ListLit, scope: Scope) -> Any:
        items = [self.evaluate(x, scope) for x in e.items]
        if e.seq:
            return SeqLayer(tuple((None, self.as_layer(v, x.span)) for v, x in zip(items, e.items, strict=False)), e.span)
        return items

    def _eval_TupleLit(self, e: A.TupleLit, scope: Scope) -> tuple:
        return tuple(self.evaluate(x, scope) for x in e.items)

    def _eval_SeqNamed(self, e: A.SeqNamed, scope: Scope) -> SeqLayer:
        entries = []
        for key, value in e.entries:
            name = key.id if isinstance(key, A.Name) else self.evaluate(key, scope)
            entries.append((self.check_name(name, key.span), self.as_layer(self.evaluate(value, scope), value.span)))
        self.check_unique([k for k, _ in entries], e.span)
        return SeqLayer(tuple(entries), e.span)

    def _eval_Reparam(self, e: A.Reparam, scope: Scope) -> ReparamLayer:
        branches = tuple((name, self.as_layer(self.evaluate(x, scope), x.span)) for name, x in e.branches)
        self.check_unique([k for k, _ in branches], e.span)
        return ReparamLayer(branches, e.span, self._merged_name(e))

    def _eval_ReparamList(self, e: A.ReparamList, scope: Scope) -> ReparamLayer:
        """Branches named by their index among the present ones (timm's ``conv_kxk.0`` ...)."""
        items = self.evaluate(e.items, scope)
        present = [self.as_layer(v, e.span) for v in items if not isinstance(v, Absent)]
        return ReparamLayer(tuple((str(i), layer) for i, layer in enumerate(present)), e.span, self._merged_name(e))

    def _merged_name(self, e: A.Reparam | A.ReparamList) -> str | None:
        """``reparam "fused" {...}``: the merged layer's name, a plain layer name."""
        if e.merged is not None and not e.merged.isidentifier():
            raise self.error(f"the merged layer's name must be a plain name such as \"fused_conv\", got "
                             f"{e.merged!r}", e.span)
        return e.merged

    def _eval_Comprehension(self, e: A.Comprehension, scope: Scope) -> Any:
        results: list[tuple[Any, Any]] = []
        for inner in self._iterate(e.clauses, scope, e.span):
            if e.cond is not None and not self.truth(self.evaluate(e.cond, inner), e.cond.span):
                continue
            key = self.evaluate(e.key, inner) if e.key is not None else None
            results.append((key, self.evaluate(e.elt, inner)))
        if not e.seq:
            return [v for _, v in results]
        entries = tuple((self.check_name(k, e.span) if k is not None else None, self.as_layer(v, e.elt.span))
                        for k, v in results)
        if e.key is not None:
            self.check_unique([k for k, _ in entries], e.span)
        return SeqLayer(entries, e.span)

    def _iterate(self, clauses: tuple[A.CompFor, ...], scope: Scope, span: Span):
        count = itertools.count(1)
        for combo in self._iterate_rec(clauses, scope):
            if next(count) > MAX_REPEAT:
                raise self.error(f"comprehension makes more than {MAX_REPEAT:,} items", span, cls=LimitError)
            self.spend(1, span)
            yield combo

    def _iterate_rec(self, clauses: tuple[A.CompFor, ...], scope: Scope):
        if not clauses:
            yield scope
            return
        first, rest = clauses[0], clauses[1:]
        items = self.evaluate(first.iterable, scope)
        if not isinstance(items, (list, tuple)):
            raise self.error(f"cannot loop over {describe(items)}", first.iterable.span)
        for item in items:
            inner = scope.child()
            self.bind_targets(first.targets, item, inner, first.span)
            yield from self._iterate_rec(rest, inner)

    def bind_targets(self, targets: tuple[str, ...], value: Any, scope: Scope, span: Span) -> None:
        """Bind ``a, b = value`` (tuple unpacking with a clear error on a length mismatch)."""
        if len(targets) == 1:
            scope.names[targets[0]] = value
            return
        if not isinstance(value, (list, tuple)) or len(value) != len(targets):
            n = len(value) if isinstance(value, (list, tuple)) else 1
            raise self.error(f"cannot unpack {describe(value)} of {n} items into {len(targets)} names "
                             f"({', '.join(targets)})", span)
        for t, v in zip(targets, value, strict=False):
            scope.names[t] = v

    def check_name(self, name: Any, span: Span) -> str:
        """A container entry name must be a non-empty identifier-like string."""
        if not isinstance(name, (str, int)) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]*", str(name)):
            raise self.error(f"layer name {name!r} must be letters, digits, '_' and '-'", span)
        return str(name)

    def check_unique(self, names: list[str | None], span: Span) -> None:
        """Names inside one container are unique."""
        seen = set()
        for n in names:
            if n is not None and n in seen:
                raise self.error(f"the name '{n}' is used twice in this container", span)
            seen.add(n)

    def as_layer(self, value: Any, span: Span) -> Any:
        """Coerce op/block names and lists of layers to layers, or return the value for later checks."""
        if isinstance(value, OpRef):
            return OpLayer(value.op, (), (), span)
        if isinstance(value, BlockRef):
            return BlockLayer(value.block, value.namespace, (), (), span)
        if isinstance(value, list) and layer_like(value):
            return SeqLayer(tuple((None, self.as_layer(v, span)) for v in value), span)
        if isinstance(value, (Layer, Named)):
            return value
        raise self.error(f"expected a layer here, got {describe(value)}", span)

    # -- operators ---------------------------------------------------------------------------
    def truth(self, value: Any, span: Span) -> bool:
        """A condition's value; refuses tensors and undecidable symbolic comparisons."""
        if isinstance(value, (bool, int, float)):
            return bool(value)
        raise self.error(f"a condition must be a bool, got {describe(value)}", span)

    def _eval_IfExpr(self, e: A.IfExpr, scope: Scope) -> Any:
        if self.truth(self.evaluate(e.cond, scope), e.cond.span):
            return self.evaluate(e.body, scope)
        if e.orelse is None:
            return Absent(e.span)
        return self.evaluate(e.orelse, scope)

    def _eval_UnaryOp(self, e: A.UnaryOp, scope: Scope) -> Any:
        value = self.evaluate(e.operand, scope)
        if e.op == "not":
            return not self.truth(value, e.operand.span)
        if isinstance(value, Tensor):
            return self.apply_op(T.ScalarArith(fn="neg"), [value], e.span)[0]
        if isinstance(value, (int, float, SymDim)) and not isinstance(value, bool):
            return -value
        raise self.error(f"cannot negate {describe(value)}", e.span)

    def _eval_BinOp(self, e: A.BinOp, scope: Scope) -> Any:
        if e.op in ("and", "or"):
            left = self.truth(self.evaluate(e.left, scope), e.left.span)
            if (e.op == "and" and not left) or (e.op == "or" and left):
                return left
            return self.truth(self.evaluate(e.right, scope), e.right.span)
        a, b = self.evaluate(e.left, scope), self.evaluate(e.right, scope)
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            return self.tensor_binop(e, a, b)
        return self.scalar_binop(e, a, b)

    def tensor_binop(self, e: A.BinOp, a: Any, b: Any) -> Tensor:
        """``+ - * / @`` between tensors, and tensor-scalar arithmetic."""
        if isinstance(a, Tensor) and isinstance(b, Tensor) and e.op in _TENSOR_BINOPS:
            return self.apply_op(_TENSOR_BINOPS[e.op](), [a, b], e.span)[0]
        scalar_ok = (int, float)
        if isinstance(a, Tensor) and isinstance(b, scalar_ok) and e.op in _SCALAR_RIGHT:
            return self.apply_op(T.ScalarArith(fn=_SCALAR_RIGHT[e.op], value=float(b)), [a], e.span)[0]
        if isinstance(b, Tensor) and isinstance(a, scalar_ok) and e.op in _SCALAR_LEFT:
            return self.apply_op(T.ScalarArith(fn=_SCALAR_LEFT[e.op], value=float(a)), [b], e.span)[0]
        raise self.error(f"operator '{e.op}' does not apply to {describe(a)} and {describe(b)}", e.span)

    def scalar_binop(self, e: A.BinOp, a: Any, b: Any) -> Any:
        """Arithmetic and comparison on ints, floats, strings and symbolic dims."""
        numeric = (int, float, SymDim)
        if e.op == "**":
            if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
                raise self.error(f"'**' needs numbers, got {describe(a)} and {describe(b)}", e.span)
            if abs(b) > MAX_INT_BITS:
                raise self.error(f"exponent {b} is too large", e.span, cls=LimitError)
            try:
                result = a ** b
            except (ArithmeticError, ValueError) as exc:
                raise self.error(f"'**' fails on {a!r} and {b!r}: {exc}", e.span) from None
            if isinstance(result, complex) or (isinstance(result, float) and not math.isfinite(result)):
                raise self.error(f"'**' on {a!r} and {b!r} gives no finite real number", e.span)
            return self.check_builtin_result(result, e.span)
        if e.op in ("==", "!=") and not (isinstance(a, SymDim) or isinstance(b, SymDim)):
            return _SCALAR_OPS[e.op](a, b)
        fn = _SCALAR_OPS.get(e.op)
        if fn is None:
            raise self.error(f"operator '{e.op}' does not apply to {describe(a)} and {describe(b)}", e.span)
        if e.op == "+" and isinstance(a, (str, list, tuple)) and type(a) is type(b):
            self.spend(len(a) + len(b), e.span)
            return fn(a, b)
        if not (isinstance(a, numeric) and isinstance(b, numeric)):
            raise self.error(f"operator '{e.op}' does not apply to {describe(a)} and {describe(b)}", e.span)
        if isinstance(a, SymDim) or isinstance(b, SymDim):
            return self.symbolic_binop(e, a, b, fn)
        try:
            result = fn(a, b)
        except ZeroDivisionError:
            raise self.error("division by zero", e.span) from None
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            raise self.error("integer result is too large", e.span, cls=LimitError)
        if isinstance(result, float) and not math.isfinite(result):
            raise self.error(f"'{e.op}' gives {result} (not a finite number)", e.span)
        return result

    def symbolic_binop(self, e: A.BinOp, a: Any, b: Any, fn) -> Any:
        """Dim arithmetic; equality only when both sides normalise to the same polynomial."""
        if e.op in ("==", "!="):
            same = SymDim.lift(a) == SymDim.lift(b)
            return same if e.op == "==" else not same
        if e.op in ("<", "<=", ">", ">=", "/"):
            raise self.error(f"cannot apply '{e.op}' to the symbolic size {a if isinstance(a, SymDim) else b}",
                             e.span, "use '//' for sizes, or give the input a concrete size")
        if max(len(str(a)), len(str(b))) > MAX_SYMBOLIC_TEXT:
            raise self.error(f"the symbolic size expression is too large to compute with ({e.op})", e.span,
                             cls=LimitError)
        try:
            return fn(a, b)
        except ZeroDivisionError as exc:
            raise self.error(str(exc), e.span) from None

    def _eval_Index(self, e: A.Index, scope: Scope) -> Any:
        obj, idx = self.evaluate(e.obj, scope), self.evaluate(e.index, scope)
        if isinstance(obj, (list, tuple)) and isinstance(idx, int) and not isinstance(idx, bool):
            if not -len(obj) <= idx < len(obj):
                raise self.error(f"index {idx} is out of range for {len(obj)} items", e.index.span)
            return obj[idx]
        raise self.error(f"cannot index {describe(obj)} with {describe(idx)}", e.span)

    # -- calls and pipes -----------------------------------------------------------------------
    def _eval_Call(self, e: A.Call, scope: Scope) -> Any:
        func = self.eval_callee(e.func, scope, "op, block or function")
        args = [self.evaluate(a, scope) for a in e.args]
        kwargs = {}
        for k, v in e.kwargs:
            if k in kwargs:
                raise self.error(f"argument '{k}' is given twice", v.span)
            kwargs[k] = self.evaluate(v, scope)
        return self.call(func, args, kwargs, e)

    def call(self, func: Any, args: list[Any], kwargs: dict[str, Any], e: A.Call) -> Any:
        """Call a built-in, create a layer from an op or block, or apply a layer to tensors."""
        if isinstance(func, OpRef):
            return self.call_op(func.op, args, kwargs, e)
        if isinstance(func, BlockRef):
            if any(isinstance(a, Tensor) for a in args):
                raise self.error(f"block {func.block.name} takes parameters, not tensors", e.span,
                                 f"create it first and then apply it: `x |> {func.block.name}(...)` or "
                                 f"`{func.block.name}(...)(x)`")
            return BlockLayer(func.block, func.namespace, tuple(args), tuple(kwargs.items()), e.span,
                              arg_spans=_arg_spans(e))
        if isinstance(func, (Layer, list)) and (isinstance(func, Layer) or is_layer(func)):
            if kwargs or not all(isinstance(a, Tensor) for a in args) or not args:
                raise self.error(f"{describe(func)} is applied to tensors only", e.span)
            return self.apply_value(func, args, e.span)
        if callable(func) and not isinstance(func, Layer):
            if any(isinstance(a, (Tensor, Layer)) for a in args):
                raise self.error("built-in functions work on numbers and lists, not tensors", e.span)
            try:
                return self.check_builtin_result(func(*args, **kwargs), e.span)
            except OpError as exc:
                raise self.error(str(exc), e.span, exc.hint, cls=LimitError if "limit" in str(exc) else
                                 ElaborationError) from None
            except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
                name = getattr(func, "__name__", "").lstrip("_") or "function"
                raise self.error(f"bad arguments to the built-in {name}: {exc}", e.span) from None
        raise self.error(f"{describe(func)} cannot be called", e.span)

    def check_builtin_result(self, value: Any, span: Span) -> Any:
        """Built-in results obey the same bounds as arithmetic: 64-bit ints, finite floats."""
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise self.error("integer result is too large", span, cls=LimitError)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(f"the result {value} is not a finite number", span)
        if isinstance(value, list):
            self.spend(len(value), span)
        return value

    def call_op(self, op: type[OpDef], args: list[Any], kwargs: dict[str, Any], e: A.Call) -> Any:
        """``relu(x)`` applies at once; ``Conv2d(64, 3)`` makes a layer for later application."""
        inputs: list[Tensor] = []
        rest = list(args)
        if op.arity is None and rest and isinstance(rest[0], (list, tuple)) and rest[0] and \
                all(isinstance(t, Tensor) for t in rest[0]):
            inputs = list(rest.pop(0))              # concat([a, b], dim=1)
        else:
            while rest and isinstance(rest[0], Tensor):   # relu(x), gla(q, k, v, g), add_n(a, b, c)
                inputs.append(rest.pop(0))
        if any(isinstance(a, Tensor) for a in rest) or any(isinstance(v, Tensor) for v in kwargs.values()):
            raise self.error(f"{op.__name__}: tensors must come before the other arguments", e.span)
        spans = _arg_spans(e)
        skip = len(args) - len(rest)      # positions taken by the tensor inputs
        spans = {(k - skip if isinstance(k, int) else k): v for k, v in spans.items()
                 if not isinstance(k, int) or k >= skip}
        layer = OpLayer(op, tuple(rest), tuple(kwargs.items()), e.span, arg_spans=spans)
        if not inputs:
            return layer
        return self.apply_value(layer, inputs, e.span)

    def _eval_Pipe(self, e: A.Pipe, scope: Scope) -> Any:
        value = self.evaluate(e.value, scope)
        layer = self.as_layer(self.eval_callee(e.layer, scope, "layer, op or block"), e.layer.span)
        inputs = list(value) if isinstance(value, tuple) else [value]
        if not all(isinstance(v, Tensor) for v in inputs):
            raise self.error(f"'|>' needs a tensor on the left, got {describe(value)}", e.value.span)
        return self.apply_value(layer, inputs, e.layer.span)


_EVALUATING = object()


def layer_like(value: Any) -> bool:
    """Layers, op and block names, and non-empty lists of those (a list acts as a sequential container)."""
    if isinstance(value, list):
        return bool(value) and all(layer_like(v) for v in value)
    return isinstance(value, (Layer, OpRef, BlockRef))


def _arg_spans(e: A.Call) -> dict[str | int, Span]:
    """Where each argument of a call was written: position index or keyword name -> span."""
    spans: dict[str | int, Span] = {i: a.span for i, a in enumerate(e.args)}
    spans.update({k: v.span for k, v in e.kwargs})
    return spans
