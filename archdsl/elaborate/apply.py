"""Applying layers to tensors: ops become nodes, blocks are expanded, containers are walked."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import pydantic

from archdsl.elaborate.builder import GraphBuilder
from archdsl.elaborate.expressions import ExpressionMixin, Scope
from archdsl.elaborate.values import (
    Absent, BlockLayer, Layer, Named, OpLayer, ReparamLayer, SeqLayer, Tensor, describe, fresh_uid, is_layer,
)
from archdsl.errors import LimitError, OpError, ShapeError
from archdsl.ir.dims import SymDim
from archdsl.ir.types import DTYPES, Span, TensorType
from archdsl.ops.base import OpDef
from archdsl.ops.tensor import AddN
from archdsl.syntax import ast as A

MAX_DEPTH = 64

_PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (float, int), "bool": (bool,), "str": (str,), "any": (object,),
}


@dataclass(frozen=True)
class Ctx:
    """Where an application happens: module path, owner identities, block depth."""

    path: tuple[str, ...] = ()
    owner: tuple[int, ...] = ()
    depth: int = 0


class ApplyMixin(ExpressionMixin):
    """Turns layer applications into graph nodes."""

    builder: GraphBuilder
    ctx: Ctx

    def apply_value(self, layer: Any, inputs: list[Tensor], span: Span) -> Any:
        """Apply ``layer`` to ``inputs`` in the current context; one output or a tuple of outputs."""
        outs = self.apply(layer, inputs, None, span)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def apply(self, layer: Any, inputs: list[Tensor], at: tuple[str, ...] | None, span: Span) -> list[Tensor]:
        """Apply at module path ``at`` (None: an anonymous, inline use)."""
        if isinstance(layer, list) and is_layer(layer):
            layer = SeqLayer(tuple((None, v) for v in layer), span)
        if isinstance(layer, Named):
            layer.uses += 1
            saved = self.ctx
            self.ctx = Ctx(layer.path, layer.owner, saved.depth)
            try:
                return self.apply(layer.layer, inputs, layer.path, span)
            finally:
                self.ctx = saved
        if isinstance(layer, Absent):
            if len(inputs) != 1:
                raise self.error(f"an absent layer passes one tensor through, got {len(inputs)}", span)
            return inputs
        handler = {OpLayer: self.apply_op_layer, BlockLayer: self.apply_block, SeqLayer: self.apply_seq,
                   ReparamLayer: self.apply_reparam}.get(type(layer))
        if handler is None:
            raise self.error(f"{describe(layer)} cannot be applied to tensors", span)
        return handler(layer, inputs, at, span)

    # -- ops -----------------------------------------------------------------------------------
    def make_op(self, layer: OpLayer) -> OpDef:
        """Bind positional and keyword arguments to the op's attributes and validate them."""
        op = layer.op
        attrs: dict[str, Any] = {}
        if len(layer.args) > len(op.positional):
            raise self.error(f"{op.__name__} takes at most {len(op.positional)} positional arguments "
                             f"({', '.join(op.positional) or 'none'}), got {len(layer.args)}", layer.span)
        attrs.update(zip(op.positional, layer.args))
        for k, v in layer.kwargs:
            if k in attrs:
                raise self.error(f"{op.__name__}: argument '{k}' is given twice", layer.span)
            attrs[k] = v
        try:
            return op(**attrs)
        except pydantic.ValidationError as exc:
            raise self._validation_error(op, exc, layer.span) from None

    def _validation_error(self, op: type[OpDef], exc: pydantic.ValidationError, span: Span | None):
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        fields = list(op.model_fields)
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(field, fields, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"{op.__name__} takes: {', '.join(fields)}"
            return self.error(f"{op.__name__} has no argument '{field}'", span, hint)
        if err["type"] == "missing":
            return self.error(f"{op.__name__} needs the argument '{field}'", span,
                              f"{op.__name__}({', '.join(op.positional)}, ...)" if op.positional else None)
        return self.error(f"{op.__name__}: bad value for '{field}': {err['msg']}", span,
                          f"got {err.get('input')!r}")

    def apply_op_layer(self, layer: OpLayer, inputs: list[Tensor], at: tuple[str, ...] | None,
                       span: Span) -> list[Tensor]:
        """One node: resolve, infer types, declare parameters."""
        return self.apply_op(self.make_op(layer), inputs, layer.span or span, at)

    def apply_op(self, op: OpDef, inputs: list[Tensor], span: Span | None,
                 at: tuple[str, ...] | None = None, tags: tuple[str, ...] = ()) -> list[Tensor]:
        """Add a node for ``op`` on ``inputs``; returns its output tensors."""
        if op.arity is not None and len(inputs) != op.arity:
            raise self.error(f"{op.__class__.__name__} takes {op.arity} tensor input(s), got {len(inputs)}", span)
        types = [t.type for t in inputs]
        try:
            op = op.resolve(types)
            outs = op.infer(types)
            params = op.params(types)
        except OpError as exc:
            notes = [(f"input {i + 1} is {t.type}", t.span) for i, t in enumerate(inputs)]
            raise self.error(f"{op.__class__.__name__}: {exc}", span, exc.hint, cls=ShapeError,
                             notes=notes) from None
        module = ".".join(at) if at else None
        if params and module is None:
            raise self.error(f"{op.__class__.__name__} has parameters, so it needs a name", span,
                             f"declare it first: `my_{op.name} = {op.__class__.__name__}(...)`, "
                             f"then use `x |> my_{op.name}`")
        mapping = {}
        if module is not None and params:
            self.builder.claim_module(module, self.ctx.owner, span)
            mapping = self.builder.declare_params(module, params, span)
        names = self.builder.add_node(op, [t.value for t in inputs], outs, mapping, module, self.ctx.path, span,
                                      tags)
        return [Tensor(n, t, span) for n, t in zip(names, outs)]

    # -- containers ----------------------------------------------------------------------------
    def apply_seq(self, layer: SeqLayer, inputs: list[Tensor], at: tuple[str, ...] | None,
                  span: Span) -> list[Tensor]:
        """Entries in order; unnamed entries are named by their index among present entries."""
        values = inputs
        index = 0
        for key, entry in layer.entries:
            if isinstance(entry, Absent):
                continue
            name = key if key is not None else str(index)
            index += 1
            sub = at + (name,) if at is not None else None
            values = self._as_list(self.apply(entry, values, sub, getattr(entry, "span", None) or span))
        return values

    def apply_reparam(self, layer: ReparamLayer, inputs: list[Tensor], at: tuple[str, ...] | None,
                      span: Span) -> list[Tensor]:
        """Branches on the same input, summed by one node tagged 'reparam'."""
        outs: list[Tensor] = []
        for name, branch in layer.branches:
            if isinstance(branch, Absent):
                continue
            sub = at + (name,) if at is not None else None
            outs += self._as_list(self.apply(branch, inputs, sub, getattr(branch, "span", None) or span))
        if not outs:
            raise self.error("every branch of this reparam block is absent", layer.span)
        if len(outs) == 1:
            return outs
        return self.apply_op(AddN(), outs, layer.span, at=None, tags=("reparam",))

    @staticmethod
    def _as_list(value: Any) -> list[Tensor]:
        if isinstance(value, Tensor):
            return [value]
        return list(value)

    # -- blocks --------------------------------------------------------------------------------
    def apply_block(self, layer: BlockLayer, inputs: list[Tensor], at: tuple[str, ...] | None,
                    span: Span) -> list[Tensor]:
        """Expand a block: bind parameters and inputs, run its statements, collect its outputs."""
        saved = self.ctx
        if saved.depth >= MAX_DEPTH:
            raise self.error(f"blocks nest deeper than {MAX_DEPTH} levels", span, "is a block applying itself?",
                             cls=LimitError)
        path = at if at is not None else saved.path
        owner = saved.owner if at is not None else saved.owner + (fresh_uid(),)
        self.ctx = Ctx(path, owner, saved.depth + 1)
        try:
            scope = Scope(layer.namespace)
            self.bind_params(layer, scope)
            if layer.block.doc and path:
                self.builder.module_docs.setdefault(".".join(path), layer.block.doc)
            return self.run_body(layer.block, scope, inputs, span)
        finally:
            self.ctx = saved

    def bind_params(self, layer: BlockLayer, scope: Scope) -> None:
        """Positional then keyword arguments, defaults for the rest, each checked against its type."""
        block = layer.block
        decls = {p.name: p for p in block.params}
        if len(layer.args) > len(block.params):
            raise self.error(f"block {block.name} takes {len(block.params)} parameters, got {len(layer.args)}",
                             layer.span)
        given = dict(zip([p.name for p in block.params], layer.args))
        for k, v in layer.kwargs:
            if k not in decls:
                close = difflib.get_close_matches(k, list(decls), n=1)
                raise self.error(f"block {block.name} has no parameter '{k}'", layer.span,
                                 f"did you mean '{close[0]}'?" if close else
                                 f"its parameters are: {', '.join(decls) or 'none'}")
            if k in given:
                raise self.error(f"parameter '{k}' of {block.name} is given twice", layer.span)
            given[k] = v
        for p in block.params:
            if p.name in given:
                value = given[p.name]
            elif p.default is not None:
                value = self.eval(p.default, scope)
            else:
                raise self.error(f"block {block.name} needs the parameter '{p.name}: {p.type}'", layer.span)
            scope.names[p.name] = self.check_param_type(block.name, p, value, layer.span)
            scope.used.add(p.name)

    def check_param_type(self, block: str, p: A.ParamDecl, value: Any, span: Span | None) -> Any:
        """Check a parameter value against ``int``, ``float``, ``list[int]``, ``tuple[...]`` ..."""
        if not _matches(p.type, value):
            raise self.error(f"parameter '{p.name}' of {block} is declared {p.type} but got {describe(value)} "
                             f"({value!r})", span)
        return float(value) if p.type == "float" else value

    def run_body(self, block: A.BlockDef, scope: Scope, inputs: list[Tensor], span: Span) -> list[Tensor]:
        """Execute a block's statements in order and return its outputs."""
        decls = [s for s in block.body if isinstance(s, A.InputStmt)]
        if len(decls) != len(inputs):
            raise self.error(f"block {block.name} takes {len(decls)} input(s), got {len(inputs)}", span)
        outputs: list[Tensor] = []
        feed = iter(inputs)
        for stmt in block.body:
            if isinstance(stmt, A.InputStmt):
                tensor = next(feed)
                self.unify(stmt.type, tensor, scope, f"input '{stmt.name}' of {block.name}", stmt.span, span)
                scope.names[stmt.name] = tensor
                scope.assigned[stmt.name] = stmt.span
            elif isinstance(stmt, A.Assign):
                self.exec_assign(stmt, scope)
            else:
                outputs.append(self.exec_output(stmt, scope))
        if not outputs:
            raise self.error(f"block {block.name} has no `out` statement", block.span)
        self.check_unused(scope)
        return outputs

    def exec_assign(self, stmt: A.Assign, scope: Scope) -> None:
        """``name = expr``: a layer gets the name as its module name; a value is just bound."""
        value = self.eval(stmt.value, scope)
        if len(stmt.targets) == 1 and isinstance(value, OpLayer) and value.op.arity == 0:
            # a source op (a free parameter such as a class token) is applied where it is named
            path = self.ctx.path + (stmt.targets[0],)
            value = self.apply(value, [], path, stmt.span)[0]
        elif len(stmt.targets) == 1 and is_layer(value) or isinstance(value, (Absent,)):
            name = stmt.targets[0]
            layer = self.as_layer(value, stmt.value.span)
            value = Named(name, layer, stmt.span, path=self.ctx.path + (name,),
                          owner=self.ctx.owner + (fresh_uid(),))
        for t in stmt.targets:
            if t in scope.names:
                raise self.error(f"'{t}' is already defined in this block", stmt.span)
        self.bind_targets(stmt.targets, value, scope, stmt.span)
        for t in stmt.targets:
            scope.assigned[t] = stmt.span

    def exec_output(self, stmt: A.OutputStmt, scope: Scope) -> Tensor:
        """``out expr``: the value must be a tensor; an annotation is checked."""
        value = self.eval(stmt.value, scope)
        if not isinstance(value, Tensor):
            raise self.error(f"`out` needs a tensor, got {describe(value)}", stmt.value.span,
                             "apply the layer to an input: `out x |> layer`" if is_layer(value) else None)
        if stmt.type is not None:
            self.unify(stmt.type, value, scope, f"output '{stmt.name}'", stmt.type.span, stmt.span)
        return value

    def check_unused(self, scope: Scope) -> None:
        """Every assigned name and input must be used."""
        for name, span in scope.assigned.items():
            value = scope.names.get(name)
            used = name in scope.used or (isinstance(value, Named) and value.uses > 0)
            if not used:
                what = "layer" if isinstance(value, Named) else "input" if isinstance(value, Tensor) and \
                    name not in scope.used else "name"
                raise self.error(f"{what} '{name}' is defined but never used", span,
                                 "remove it, or use it in the dataflow")

    # -- shapes ----------------------------------------------------------------------------------
    def eval_type(self, texpr: A.TensorTypeExpr, scope: Scope, symbolic: bool) -> TensorType:
        """A model input type: unbound names become symbols."""
        dims = []
        for d in texpr.dims:
            if isinstance(d, A.Name) and symbolic and not scope.get_local(d.id)[0]:
                sym = SymDim.symbol(d.id)
                scope.names[d.id] = sym
                scope.used.add(d.id)
                dims.append(sym)
                continue
            value = self.eval(d, scope)
            if isinstance(value, bool) or not isinstance(value, (int, SymDim)):
                raise self.error(f"a dimension must be an int or a symbol, got {describe(value)}", d.span)
            if isinstance(value, int) and value < 0:
                raise self.error(f"a dimension must not be negative, got {value}", d.span)
            dims.append(value)
        return TensorType(shape=tuple(dims), dtype=self.dtype(texpr))

    def dtype(self, texpr: A.TensorTypeExpr) -> str:
        """The declared dtype (float32 by default)."""
        dt = texpr.dtype or "float32"
        if dt not in DTYPES:
            close = difflib.get_close_matches(dt, DTYPES, n=1)
            raise self.error(f"unknown dtype '{dt}'", texpr.span, f"did you mean '{close[0]}'?" if close else None)
        return dt

    def unify(self, texpr: A.TensorTypeExpr, tensor: Tensor, scope: Scope, what: str, where: Span,
              call_span: Span | None) -> None:
        """Match a declared type against an actual tensor, binding unbound dim names."""
        actual = tensor.type
        notes = [(f"the tensor {actual} came from here", tensor.span)] if tensor.span else []
        declared = "[" + ", ".join(_dim_text(d) for d in texpr.dims) + "]"
        if len(texpr.dims) != actual.rank or self.dtype(texpr) != actual.dtype:
            raise self.error(f"{what} expects {declared} ({self.dtype(texpr)}, rank {len(texpr.dims)}), got "
                             f"{actual} ({actual.dtype}, rank {actual.rank})", call_span or where, cls=ShapeError,
                             notes=[(f"{what} is declared here", where)] + notes)
        for d, got in zip(texpr.dims, actual.shape):
            if isinstance(d, A.Name) and not scope.get_local(d.id)[0]:
                scope.names[d.id] = got
                scope.used.add(d.id)
                continue
            want = self.eval(d, scope)
            if want != got:
                raise self.error(f"{what} expects {declared}, but {_dim_text(d)} = {want} and the tensor has {got} "
                                 f"there (the full shape is {actual})", call_span or where, cls=ShapeError,
                                 notes=[(f"{what} is declared here", where)] + notes)


def _dim_text(d: A.Expr) -> str:
    if isinstance(d, A.Name):
        return d.id
    if isinstance(d, A.Num):
        return str(d.value)
    return "…"


def _matches(type_name: str, value: Any) -> bool:
    """Does ``value`` fit a declared parameter type such as ``list[tuple[int, int]]``?"""
    type_name = type_name.replace(" ", "")
    if value is None:
        return True
    if type_name.startswith(("list[", "tuple[")):
        inner = type_name[type_name.index("[") + 1:-1]
        if not isinstance(value, (list, tuple)):
            return False
        parts = _split_top(inner)
        if type_name.startswith("tuple[") and len(parts) > 1:
            return len(parts) == len(value) and all(_matches(t, v) for t, v in zip(parts, value))
        return all(_matches(inner, v) for v in value)
    if type_name in ("list", "tuple"):
        return isinstance(value, (list, tuple))
    if type_name == "layer":
        return isinstance(value, Layer) or is_layer(value)
    allowed = _PARAM_TYPES.get(type_name)
    if allowed is None:
        return False
    if type_name in ("int", "float") and isinstance(value, bool):
        return False
    if type_name == "int" and isinstance(value, SymDim):
        return True
    if type_name == "any":
        return True
    return isinstance(value, allowed)


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "["
        depth -= ch == "]"
        cur += ch
    return parts + [cur]
