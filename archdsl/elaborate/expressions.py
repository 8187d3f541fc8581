"""Expression evaluation: names, constants, templates, operators, indexing, calls and pipes.

Scalars go to the pure evaluator (:mod:`scalars`); containers and comprehensions to :class:`Containers`;
applying a layer or an op to tensors to the :class:`Applies` the evaluator is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from archdsl.elaborate import dataflow, scalars, suggest
from archdsl.elaborate.builtins import BUILTINS, BuiltinLimit
from archdsl.elaborate.containers import ArgSpans, Containers, arg_spans
from archdsl.elaborate.dataflow import POISON
from archdsl.elaborate.loader import Namespace
from archdsl.elaborate.scalars import ScalarError
from archdsl.elaborate.scope import Scope
from archdsl.elaborate.session import Session
from archdsl.elaborate.values import (
    Absent,
    BlockLayer,
    BlockRef,
    Layer,
    Named,
    NamespaceRef,
    OpLayer,
    OpRef,
    Tensor,
    Unnamed,
    describe,
    is_layer,
)
from archdsl.errors import ArchError, ElaborationError, LimitError, OpError
from archdsl.ir.types import Span
from archdsl.ops import tensor as T
from archdsl.ops.base import OpDef, Trait
from archdsl.ops.registry import lookup
from archdsl.syntax import ast as A

# tensor (op) tensor
_TENSOR_BINOPS = {"+": T.Add, "-": T.Sub, "*": T.Mul, "/": T.Div, "@": T.MatMul}
# tensor (op) scalar  and  scalar (op) tensor
_SCALAR_RIGHT: dict[str, T.ScalarFn] = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow"}
_SCALAR_LEFT: dict[str, T.ScalarFn] = {"+": "add", "-": "rsub", "*": "mul", "/": "rdiv"}

_TEMPLATE = re.compile(r"\{([^{}]*)\}")
_INDEXABLE = "only containers (seq[...], seq{...}, reparam, lists of layers) have entries to index"
_INSIDE_BLOCK = "a block's layers are not reachable from outside; use a container: `head = seq{fc: ...}`, `head.fc`"
_EVALUATING = object()
_OP_REFS: dict[type[OpDef], OpRef] = {}       # one reference per op class (equal references are interchangeable)
_INT_BOUND = 1 << scalars.MAX_INT_BITS          # ints strictly within it have at most MAX_INT_BITS bits
# int (op) int with an int or bool result (scalars.OPS but '/'): the same function scalars.binop applies
_INT_OPS = {op: fn for op, (fn, _) in scalars.OPS.items() if op != "/"}


def spread(values: list[Any]) -> list[Any]:
    """Inputs to a layer: a list of tensors among them gives its tensors in order (``root(x2, x1, kids)``)."""
    out: list[Any] = []
    for v in values:
        if isinstance(v, list) and all(isinstance(t, Tensor) for t in v):
            out += v
        else:
            out.append(v)
    return out


class Applies(Protocol):
    """What the evaluator needs from layer application (``x |> layer``, ``relu(x)``, ``a + b``)."""

    def apply_value(self, layer: Any, inputs: list[Tensor], span: Span) -> Any: ...

    def apply_named(self, layer: Named, inputs: list[Tensor], at: tuple[str, ...] | None,
                    span: Span) -> list[Tensor]: ...

    by_args: dict[tuple, OpDef]

    def add(self, op: OpDef, inputs: list[Tensor], span: Span | None, at: tuple[str, ...] | None,
            path: tuple[str, ...], owner: tuple[int | str, ...], tags: tuple[str, ...] = (),
            ties: dict[str, Any] | None = None) -> list[Tensor]: ...

    def apply_op(self, op: OpDef, inputs: list[Tensor], span: Span | None) -> list[Tensor]: ...


class Evaluator:
    """Evaluates expressions in a scope; tensor-valued ones add nodes through ``applier``."""

    def __init__(self, session: Session, applier: Applies | None = None) -> None:
        self.session = session
        self._applier = applier                         # set by the elaborator once both parts exist
        self.containers = Containers(session, self)
        self.shortcuts = session.shortcuts
        self.let_stack: list[tuple[str, A.Assign]] = []   # constants being evaluated, for cycle messages
        self.binary_ops: dict[str, OpDef] = {}            # ``a + b`` on tensors: the op of each operator
        self.global_ops: dict[tuple[int, str], tuple[Namespace, OpRef]] = {}   # see lookup_global
        c = self.containers
        self.dispatch: dict[type, Callable[[Any, Scope], Any]] = {
            A.Num: self.number, A.Const: lambda e, s: e.value, A.Str: lambda e, s: self.fill_template(e.value, s, e.span),
            A.Name: self.name, A.Attr: self.attr, A.TupleLit: lambda e, s: tuple(self.evaluate(x, s) for x in e.items),
            A.ListLit: c.list_lit, A.SeqNamed: c.seq_named, A.Reparam: c.reparam, A.ReparamList: c.reparam_list,
            A.Comprehension: c.comprehension, A.IfExpr: self.if_expr, A.UnaryOp: self.unary, A.BinOp: self.binop,
            A.Index: self.index, A.Call: self.call_expr, A.Pipe: self.pipe,
        }

    @property
    def applier(self) -> Applies:
        """How tensor-valued expressions add nodes."""
        if self._applier is None:
            raise RuntimeError("the evaluator has no applier: the elaborator sets one before evaluating")
        return self._applier

    @applier.setter
    def applier(self, applier: Applies) -> None:
        self._applier = applier

    def evaluate(self, expr: A.Expr, scope: Scope) -> Any:
        """Evaluate one expression in ``scope``."""
        return self.dispatch[type(expr)](expr, scope)

    def scalar(self, fn: Callable[..., Any], at: Any, *args: Any) -> Any:
        """Run a pure scalar function, turning its ScalarError into an error located at ``at`` (a span, or a syntax
        node whose span is then read: a syntax node makes its span on each read)."""
        try:
            return fn(*args)
        except ScalarError as exc:
            raise self.session.error(exc.message, _span(at), exc.hint,
                                     cls=LimitError if exc.limit else ElaborationError) from None

    # -- leaves ------------------------------------------------------------------------------
    def number(self, e: A.Num, scope: Scope) -> Any:
        """A number literal, within 64 bits and finite."""
        value = e.value
        if type(value) is int and -_INT_BOUND < value < _INT_BOUND and self.shortcuts:   # as scalars.number finds
            return value
        return self.scalar(scalars.number, e, value)

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
                raise type(exc)(exc.diagnostics, self.session.sources) from None
            value = self.evaluate(expr, scope)
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise self.session.error(f"a template part must be an int, a float or a string, got "
                                         f"{describe(value)}", span, "put a number or a string inside the braces")
            return repr(value) if isinstance(value, float) else str(value)

        if "{" in _TEMPLATE.sub("", text) or "}" in _TEMPLATE.sub("", text):
            raise self.session.error(f"unbalanced braces in the name template {text!r}", span,
                                     "each '{' in a name template closes with '}': \"layer{i + 1}\"")
        return _TEMPLATE.sub(fill, text)

    def name(self, e: A.Name, scope: Scope, what: str = "name", args: tuple[A.Expr, ...] = ()) -> Any:
        """A local name, else a global one (``what`` and ``args``: as for :meth:`lookup_global`)."""
        key = e.id
        names = scope.names
        if key in names:                # a name of this scope (Scope.get_local's first step, inline)
            value = names[key]
            if value is not POISON:
                scope.used.add(key)
                return value
        found, value = scope.get_local(key)
        if found:
            return value
        return self.lookup_global(key, scope, e, what, args)

    def lookup_global(self, name: str, scope: Scope, at: Any, what: str = "name",
                      args: tuple[A.Expr, ...] = ()) -> Any:
        """Constants, blocks, import aliases, built-ins and ops, in that order (``what`` names the role in errors;
        ``at``: the place, or the syntax node whose span is the place)."""
        ns = scope.namespace
        known = self.global_ops.get((id(ns), name))
        if known is not None and known[0] is ns:        # an op's name, found before in this namespace
            return known[1]
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
            ref = _OP_REFS.get(op)
            if ref is None:
                ref = _OP_REFS[op] = OpRef(op)
            # a namespace's constants, blocks and aliases are fixed once it is loaded, so the name stays the op's
            # (the entry holds the namespace: the id in its key stays its own)
            self.global_ops[(id(ns), name)] = (ns, ref)
            return ref
        span = at if isinstance(at, Span) else at.span
        root = scope.root()
        later = dataflow.later_definition(root.block, root.current, name)
        if later is not None and root.current is not None:     # (later is None without a current statement)
            raise dataflow.use_before_definition(self.session, root.block, root.current, later, name, span)
        hint = suggest.suggestion(name, what, scope, self._any_tensor(args, scope))
        raise self.session.error(f"unknown {what} '{name}'", span, hint or
                                 "define it as a block parameter, a layer (`name = ...`) or a top-level `let`")

    def callee(self, expr: A.Expr, scope: Scope, what: str, args: tuple[A.Expr, ...] = ()) -> Any:
        """Evaluate the function of a call or the layer of a pipe; an unknown bare name is reported as ``what``
        (a call's ``args`` tell its did-you-mean whether an op or a built-in function is meant)."""
        if isinstance(expr, A.Name):
            return self.name(expr, scope, what, args)
        return self.dispatch[type(expr)](expr, scope)

    def _any_tensor(self, args: tuple[A.Expr, ...], scope: Scope) -> bool:
        """Whether a call's arguments include a tensor (for the did-you-mean of an unknown function only)."""
        for a in args:
            try:
                if isinstance(self.evaluate(a, scope), Tensor):
                    return True
            except (ArchError, dataflow.Poisoned):
                continue
        return False

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

    def _let_cycle(self, name: str, stack: list[tuple[str, A.Assign]]) -> ArchError:
        """The error for constants defined in terms of each other, naming the whole chain."""
        start = next((i for i, (n, _) in enumerate(stack) if n == name), 0)
        cycle = stack[start:]
        if len(cycle) <= 1:
            return self.session.error(f"constant '{name}' is defined in terms of itself",
                                      cycle[0][1].span if cycle else None, "give it a value that does not refer to it")
        chain = " -> ".join(f"'{n}'" for n, _ in cycle + [cycle[0]])
        notes = [(f"'{n}' is defined here", item.span) for n, item in cycle[1:]]
        return self.session.error(f"constants are defined in terms of each other: {chain}", cycle[0][1].span,
                                  "give one of them a value that does not refer back", notes=notes)

    def attr(self, e: A.Attr, scope: Scope) -> Any:
        """``alias.Name``: a name from an imported file."""
        obj = self.evaluate(e.obj, scope)
        if isinstance(obj, NamespaceRef):
            return self.lookup_global(e.name, Scope(obj.namespace), e.span)
        if self.containers.entries(obj) is not None:           # head.fc: an entry of a named container
            return self.containers.entry(obj, e.name, e.span)
        raise self.session.error(f"'.{e.name}' needs an import alias or a container on the left, got "
                                 f"{describe(obj)}", e.span, _INSIDE_BLOCK if isinstance(obj, Layer) else None)

    # -- operators ---------------------------------------------------------------------------
    def truth(self, value: Any, at: Any) -> bool:
        """A condition's value; refuses tensors and undecidable symbolic comparisons (``at``: as for scalar)."""
        return self.scalar(scalars.truth, at, value)

    def if_expr(self, e: A.IfExpr, scope: Scope) -> Any:
        """``a if cond else b``; without ``else`` a false condition gives an absent layer."""
        if self.truth(self.evaluate(e.cond, scope), e.cond):
            return self.evaluate(e.body, scope)
        if e.orelse is None:
            return Absent(e.span)
        return self.evaluate(e.orelse, scope)

    def unary(self, e: A.UnaryOp, scope: Scope) -> Any:
        """``not x`` and ``-x`` (on a tensor: a node)."""
        value = self.evaluate(e.operand, scope)
        if e.op == "not":
            return not self.truth(value, e.operand)
        if isinstance(value, Tensor):
            return self.applier.apply_op(T.ScalarArith(fn="neg"), [value], e.span)[0]
        return self.scalar(scalars.negate, e, value)

    def binop(self, e: A.BinOp, scope: Scope) -> Any:
        """``and``/``or`` short-circuit; tensor arithmetic adds nodes; the rest is scalar."""
        if e.op in ("and", "or"):
            left = self.truth(self.evaluate(e.left, scope), e.left)
            if (e.op == "and" and not left) or (e.op == "or" and left):
                return left
            return self.truth(self.evaluate(e.right, scope), e.right)
        dispatch = self.dispatch
        a, b = dispatch[type(e.left)](e.left, scope), dispatch[type(e.right)](e.right, scope)
        if type(a) is int and type(b) is int and self.shortcuts:    # sizes: scalars.binop's answer, when in bounds
            fn = _INT_OPS.get(e.op)
            if fn is not None and (b or e.op not in ("//", "%")):
                result = fn(a, b)
                if -_INT_BOUND < result < _INT_BOUND:
                    return result
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            return self.tensor_binop(e, a, b)
        cost = scalars.concat_cost(e.op, a, b)
        if cost:
            self.session.spend(cost, e.span)
        return self.scalar(scalars.binop, e, e.op, a, b)

    def tensor_binop(self, e: A.BinOp, a: Any, b: Any) -> Tensor:
        """``+ - * / @`` between tensors, and tensor-scalar arithmetic."""
        apply_op, span = self.applier.apply_op, self.session.span_of(e)
        if isinstance(a, Tensor) and isinstance(b, Tensor) and e.op in _TENSOR_BINOPS:
            op = self.binary_ops.get(e.op)
            if op is None:                  # (attribute-free ops: one object each, which the rule cache finds)
                op = self.binary_ops[e.op] = _TENSOR_BINOPS[e.op]()
            return apply_op(op, [a, b], span)[0]
        scalar_ok = (int, float)
        if isinstance(a, Tensor) and isinstance(b, scalar_ok) and e.op in _SCALAR_RIGHT:
            return apply_op(T.ScalarArith(fn=_SCALAR_RIGHT[e.op], value=float(b)), [a], span)[0]
        if isinstance(b, Tensor) and isinstance(a, scalar_ok) and e.op in _SCALAR_LEFT:
            return apply_op(T.ScalarArith(fn=_SCALAR_LEFT[e.op], value=float(a)), [b], span)[0]
        raise self.session.error(f"operator '{e.op}' does not apply to {describe(a)} and {describe(b)}", e.span,
                                 "tensors take + - * / @ with tensors, and + - * / with numbers")

    def index(self, e: A.Index, scope: Scope) -> Any:
        """``items[i]`` on lists and tuples; ``layers[i]`` on containers."""
        obj, idx = self.evaluate(e.obj, scope), self.evaluate(e.index, scope)
        if isinstance(obj, (list, tuple)) and isinstance(idx, int) and not isinstance(idx, bool):
            if not -len(obj) <= idx < len(obj):
                raise self.session.error(f"index {idx} is out of range for {len(obj)} items", e.index.span,
                                         f"indices run from 0 to {len(obj) - 1} (or -1 to -{len(obj)} from the end)")
            return obj[idx]
        if self.containers.entries(obj) is not None:
            return self.containers.entry(obj, idx, e.index.span)
        raise self.session.error(f"cannot index {describe(obj)} with {describe(idx)}", e.span,
                                 _INDEXABLE if isinstance(obj, Layer) else None)

    # -- calls and pipes -----------------------------------------------------------------------
    def call_expr(self, e: A.Call, scope: Scope) -> Any:
        """``f(args)``: evaluate the function and the arguments, then :meth:`call`."""
        f, given = e.func, e.args
        # (callee's usual case, a bare name, inline; one argument without a comprehension's frame)
        func = self.name(f, scope, suggest.CALL, given) if type(f) is A.Name else \
            self.callee(f, scope, suggest.CALL, given)
        dispatch = self.dispatch
        if len(given) == 1:
            a = given[0]
            args = [dispatch[type(a)](a, scope)]
        else:
            args = [dispatch[type(a)](a, scope) for a in given]
        kwargs = {}
        for k, v in e.kwargs:
            if k in kwargs:
                raise self.session.error(f"argument '{k}' is given twice", v.span, "give each argument once")
            kwargs[k] = dispatch[type(v)](v, scope)
        if type(func) is OpRef:
            return self.call_op(func.op, args, kwargs, e)
        return self.call(func, args, kwargs, e)

    def call(self, func: Any, args: list[Any], kwargs: dict[str, Any], e: A.Call) -> Any:
        """Call a built-in, create a layer from an op or block, or apply a layer to tensors."""
        error = self.session.error
        if isinstance(func, OpRef):
            return self.call_op(func.op, args, kwargs, e)
        if isinstance(func, BlockRef):
            if any(isinstance(a, Tensor) for a in args):
                raise error(f"block {func.block.name} takes parameters, not tensors", e.span,
                            f"create it first and then apply it: `x |> {func.block.name}(...)` or "
                            f"`{func.block.name}(...)(x)`")
            return BlockLayer(func.block, func.namespace, tuple(args), tuple(kwargs.items()), self.session.span_of(e),
                              arg_spans=arg_spans(e))
        if isinstance(func, (Layer, list)) and (isinstance(func, Layer) or is_layer(func)):
            args = spread(args)
            if kwargs or not all(isinstance(a, Tensor) for a in args) or not args:
                raise error(f"{describe(func)} is applied to tensors only", e.span,
                            "a layer takes tensors, without keywords: `layer(x)` or `x |> layer`")
            return self.applier.apply_value(func, args, e.span)
        if callable(func) and not isinstance(func, Layer):
            return self.call_builtin(func, args, kwargs, e.span)
        raise error(f"{describe(func)} cannot be called", e.span,
                    "only ops, blocks, layers and built-in functions can be called")

    def call_builtin(self, func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], span: Span) -> Any:
        """A pure built-in on numbers and lists; its result within the usual bounds."""
        args = [self._listed(a) for a in args]        # len(paths), zip(paths, inputs): a container's entries
        if any(isinstance(a, (Tensor, Layer)) for a in args):
            raise self.session.error("built-in functions work on numbers and lists, not tensors", span,
                                     "for tensors use an op (`archdsl ops` lists them)")
        try:
            return self.check_result(func(*args, **kwargs), span)
        except OpError as exc:
            raise self.session.error(str(exc), span, exc.hint, cls=LimitError if isinstance(exc, BuiltinLimit) else
                                     ElaborationError) from None
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            name = getattr(func, "__name__", "").lstrip("_") or "function"
            raise self.session.error(f"bad arguments to the built-in {name}: {exc}", span,
                                     "built-ins take numbers and lists, as in Python") from None

    def _listed(self, value: Any) -> Any:
        entries = self.containers.entries(value)
        return value if entries is None else [layer for _, layer in entries]

    def check_result(self, value: Any, span: Span) -> Any:
        """Built-in results obey the same bounds as arithmetic; a list counts as work."""
        self.scalar(scalars.bounded, span, value)
        if isinstance(value, list):
            self.session.spend(len(value), span)
        return value

    def call_op(self, op: type[OpDef], args: list[Any], kwargs: dict[str, Any], e: A.Call) -> Any:
        """``relu(x)`` applies at once; ``Conv2d(64, 3)`` makes a layer for later application."""
        if op.arity is None and args and isinstance(args[0], (list, tuple)) and args[0] and \
                all(isinstance(t, Tensor) for t in args[0]):
            inputs: list[Tensor] = list(args[0])     # concat([a, b], dim=1)
            skip = 1
        else:                                       # relu(x), gla(q, k, v, g), add_n(a, b, c)
            skip = 0
            for a in args:
                if not isinstance(a, Tensor):
                    break
                skip += 1
            inputs = args[:skip]
        rest = args[skip:] if skip else args
        late = False
        for a in rest:
            if isinstance(a, Tensor):
                late = True
        if late or kwargs and any(isinstance(v, Tensor) for v in kwargs.values()):
            raise self.session.error(f"{op.__name__}: tensors must come before the other arguments", e.span,
                                     f"write {op.__name__}(x, ...) with the tensors first")
        span = self.session.span_of(e)
        if inputs and not rest and not kwargs and self.shortcuts:   # relu(x): the op made before, applied at once
            made = self.applier.by_args.get((op, ()))
            if made is not None and Trait.BUFFER not in op.traits:
                ctx = self.session.ctx      # (apply_value -> apply_op_layer -> add, without the layer object)
                outs = self.applier.add(made, inputs, span, None, ctx.path, ctx.owner)
                return outs[0] if len(outs) == 1 else tuple(outs)
        layer = OpLayer(op, tuple(rest), tuple(kwargs.items()) if kwargs else (), span,
                        ArgSpans(e, skip))        # positions after those of the tensor inputs
        if not inputs:
            if op.arity == 0 and op.params is OpDef.params:
                return self.applier.apply_value(layer, [], span)  # a constructor (arange, zeros): a value at once
            return layer
        if Trait.BUFFER in op.traits:       # named (and applied) where it is assigned: idx = Buffer(expr)
            return Unnamed(layer, tuple(inputs), span)
        return self.applier.apply_value(layer, inputs, span)

    def pipe(self, e: A.Pipe, scope: Scope) -> Any:
        """``x |> layer`` (a tuple on the left feeds several inputs)."""
        value = self.dispatch[type(e.value)](e.value, scope)
        f = e.layer
        target = self.name(f, scope, "layer, op or block") if type(f) is A.Name else \
            self.callee(f, scope, "layer, op or block")       # (callee's usual case inline)
        if type(value) is Tensor and type(target) is Named and self.shortcuts:
            op = target.layer
            if type(op) is OpLayer and op.span is not None:     # the usual `x |> fc`: a named op on one tensor
                outs = self.applier.apply_named(target, [value], None, op.span)     # (apply_value's dispatch)
                return outs[0] if len(outs) == 1 else tuple(outs)
        layer = self.containers.as_layer(target, e.layer)
        inputs = spread(list(value) if isinstance(value, tuple) else [value])
        if not all(isinstance(v, Tensor) for v in inputs):
            raise self.session.error(f"'|>' needs a tensor on the left, got {describe(value)}", e.value.span,
                                     "a pipe feeds a tensor to a layer: `x |> layer`")
        op = layer.layer if isinstance(layer, Named) else layer
        # an op layer (named or not) places its node and its errors at its own span: the pipe's is not read
        span = op.span if type(op) is OpLayer and op.span is not None else self.session.span_of(e.layer)
        return self.applier.apply_value(layer, inputs, span)


def _span(at: Any) -> Span | None:
    """The place ``at`` stands for: a span, or a syntax node's span (read only when needed: it is made on read)."""
    return at if at is None or isinstance(at, Span) else at.span
