"""Applying layers to tensors: ops become nodes, blocks are expanded, containers are walked."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import pydantic

from archdsl.elaborate import builder as graph_builder
from archdsl.elaborate.builder import GraphBuilder
from archdsl.elaborate.expressions import BlockRef, ExpressionMixin, OpRef, Scope, layer_like
from archdsl.elaborate.replay import Expansion, plain_key, replay
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
    fresh_uid,
    is_layer,
)
from archdsl.errors import Diagnostic, LimitError, OpError, ShapeError
from archdsl.ir.dims import SymDim
from archdsl.ir.types import DTYPES, Span, TensorType
from archdsl.ops.base import OpDef, apply_rules
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
    owner: tuple[int | str, ...] = ()
    depth: int = 0


class ApplyMixin(ExpressionMixin):
    """Turns layer applications into graph nodes."""

    builder: GraphBuilder
    ctx: Ctx
    where: Span | None          # the latest block application (for errors that have no better place)
    block_stack: list[str]      # names of the blocks being applied, outermost first
    expansions: dict[tuple, Expansion]   # named block applications, for replay

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
        attrs.update(zip(op.positional, layer.args, strict=False))
        for k, v in layer.kwargs:
            if k in attrs:
                raise self.error(f"{op.__name__}: argument '{k}' is given twice", layer.span)
            attrs[k] = v
        try:
            return op(**{k: _tuples(v) for k, v in attrs.items()})
        except pydantic.ValidationError as exc:
            raise self._validation_error(layer, exc) from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise self.error(f"{op.__name__}: bad arguments: {exc}", layer.span) from None

    def _validation_error(self, layer: OpLayer, exc: pydantic.ValidationError):
        """The first pydantic complaint as a spec error pointing at the offending argument."""
        op, span = layer.op, layer.span
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        fields = list(op.model_fields)
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(field, fields, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"{op.__name__} takes: {', '.join(fields) or 'nothing'}"
            return self.error(f"{op.__name__} has no argument '{field}'", span, hint)
        if err["type"] == "missing":
            return self.error(f"{op.__name__} needs the argument '{field}'", span,
                              f"{op.__name__}({', '.join(op.positional)}, ...)" if op.positional else None)
        where = layer.arg_spans.get(op.positional.index(field) if field in op.positional else -1)
        where = layer.arg_spans.get(field) or where or span
        msg = str(err["msg"])
        msg = msg[len("Value error, "):] if msg.startswith("Value error, ") else msg
        return self.error(f"{op.__name__}: bad value for '{field}': {msg[:1].lower()}{msg[1:]}", where,
                          f"got {describe(err.get('input'))} ({err.get('input')!r})")

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
            op, outs, params = apply_rules(op, types)
        except (OpError, ArithmeticError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise self._op_error(op, exc, inputs, span) from None
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
        return [Tensor(n, t, span) for n, t in zip(names, outs, strict=False)]

    def _op_error(self, op: OpDef, exc: Exception, inputs: list[Tensor], span: Span | None) -> ShapeError:
        """A shape-rule failure, naming the op once and pointing at where each input came from."""
        cls = op.__class__.__name__
        text = str(exc)
        for prefix in (f"{op.name}: ", f"{op.name} "):
            if text.startswith(prefix):
                text = text[len(prefix):]
        if not isinstance(exc, OpError):
            text = f"cannot compute the output shape with these attributes ({text})"
        notes = [(f"input {i + 1}, {t.type}, comes from here" if len(inputs) > 1 else f"the input {t.type} comes "
                  "from here", t.span) for i, t in enumerate(inputs)]
        return self.error(f"{cls}: {text}", span, getattr(exc, "hint", None), cls=ShapeError, notes=notes)

    # -- containers ----------------------------------------------------------------------------
    def apply_seq(self, layer: SeqLayer, inputs: list[Tensor], at: tuple[str, ...] | None,
                  span: Span) -> list[Tensor]:
        """Entries in order; unnamed entries are named by their index among present entries.

        An unnamed container names its entries under the enclosing block (``features.0.0`` for a
        ``seq[Conv2d(...), BatchNorm2d()]`` returned by a block applied at ``features.0``).
        """
        values = inputs
        index = 0
        saved = self.ctx
        if at is None:
            at = saved.path
            self.ctx = Ctx(saved.path, saved.owner + (fresh_uid(),), saved.depth)
        try:
            for key, entry in layer.entries:
                if isinstance(entry, Absent):
                    continue
                name = key if key is not None else str(index)
                index += 1
                values = self._as_list(self.apply(entry, values, at + (name,), getattr(entry, "span", None) or span))
        finally:
            self.ctx = saved
        return values

    def apply_reparam(self, layer: ReparamLayer, inputs: list[Tensor], at: tuple[str, ...] | None,
                      span: Span) -> list[Tensor]:
        """Branches on the same input, summed by one node tagged 'reparam'.

        An unnamed reparam block puts its (named) branches directly under the enclosing block, as in
        RepVGG's ``out relu(reparam { rbr_dense = ...; rbr_1x1 = ... }(x))``.
        """
        outs: list[Tensor] = []
        saved = self.ctx
        if at is None:
            at = saved.path
            self.ctx = Ctx(saved.path, saved.owner + (fresh_uid(),), saved.depth)
        try:
            for name, branch in layer.branches:
                if isinstance(branch, Absent):
                    continue
                outs += self._as_list(self.apply(branch, inputs, at + (name,), getattr(branch, "span", None) or span))
        finally:
            self.ctx = saved
        if not outs:
            raise self.error("every branch of this reparam block is absent", layer.span)
        if len(outs) == 1:
            self._claim_nested_sum(outs[0], at, layer.merged)
            return outs
        self.ctx = Ctx(at, saved.owner, saved.depth)        # the sum's scope is the reparam block's path (passes)
        try:
            tags = ("reparam",) if layer.merged is None else ("reparam", f"merge-as:{layer.merged}")
            return self.apply_op(AddN(), outs, layer.span, at=None, tags=tags)
        finally:
            self.ctx = saved

    def _claim_nested_sum(self, out: Tensor, at: tuple[str, ...], merged: str | None) -> None:
        """A reparam block whose only branch is another reparam block is that block: its sum moves to ``at``
        (MobileOne's pointwise blocks merge into ``stages.1.1.reparam_conv``, as timm names them)."""
        nodes = self.builder.nodes
        if nodes and "reparam" in nodes[-1].tags and nodes[-1].outputs == (out.value,):
            tags = nodes[-1].tags if merged is None else \
                tuple(t for t in nodes[-1].tags if not t.startswith("merge-as:")) + (f"merge-as:{merged}",)
            nodes[-1] = nodes[-1].model_copy(update={"scope": at, "tags": tags})

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
            raise self._depth_error(layer, span)
        self.where = span
        path = at if at is not None else saved.path
        owner = saved.owner if at is not None else saved.owner + (fresh_uid(),)
        key = self._expansion_key(layer, inputs) if at else None
        if key in self.expansions:
            self._budget(layer, len(self.expansions[key].nodes), span)     # before cloning, not after
            return replay(self.builder, self.expansions[key], at, inputs, owner + (fresh_uid(),))
        self.block_stack.append(layer.block.name)
        first_node, known_docs = len(self.builder.nodes), set(self.builder.module_docs)
        self.ctx = Ctx(path, owner, saved.depth + 1)
        try:
            scope = Scope(layer.namespace)
            self.bind_params(layer, scope)
            if layer.block.doc and path:
                self.builder.module_docs.setdefault(".".join(path), layer.block.doc)
            outputs = self.run_body(layer.block, scope, inputs, span)
        finally:
            self.ctx = saved
            self.block_stack.pop()
        if key is not None:
            docs = tuple((k, v) for k, v in self.builder.module_docs.items() if k not in known_docs)
            self.expansions[key] = Expansion(at, tuple(t.value for t in inputs), tuple(self.builder.nodes[first_node:]),
                                             tuple(outputs), docs)
        return outputs

    def _budget(self, layer: BlockLayer, adding: int, span: Span) -> None:
        """Refuse an expansion that would take the graph past the node limit, before making its nodes."""
        have, limit = len(self.builder.nodes), graph_builder.MAX_NODES
        if have + adding > limit:
            raise LimitError(Diagnostic(
                f"the model has more than {limit:,} nodes: this {layer.block.name} adds {adding:,} to {have:,}", span,
                "a block that applies another block twice at every level grows exponentially; "
                "check repeat counts and recursion"), self.sources)

    def _expansion_key(self, layer: BlockLayer, inputs: list[Tensor]) -> tuple | None:
        """Identity of a block application, when its arguments are plain data (see ``replay``)."""
        args = plain_key((tuple(layer.args), tuple(layer.kwargs)))
        if args is None or len({t.value for t in inputs}) != len(inputs):
            return None
        return (id(layer.block), id(layer.namespace), args, tuple(t.type for t in inputs), self.ctx.depth)

    def _depth_error(self, layer: BlockLayer, span: Span) -> LimitError:
        """Too deep: name the chain of blocks (usually one block applying itself)."""
        chain = self.block_stack[-4:] + [layer.block.name]
        text = " -> ".join(chain) if len(self.block_stack) <= 4 else "… -> " + " -> ".join(chain)
        name = layer.block.name
        hint = f"block {name} applies itself; a recursion must stop within {MAX_DEPTH} levels" \
            if self.block_stack.count(name) > 1 else "are blocks applying each other?"
        return self.error(f"blocks nest deeper than {MAX_DEPTH} levels ({text})", span, hint, cls=LimitError)

    def bind_params(self, layer: BlockLayer, scope: Scope) -> None:
        """Positional then keyword arguments, defaults for the rest, each checked against its type."""
        block = layer.block
        decls = self._param_decls(block)
        if len(layer.args) > len(block.params):
            raise self.error(f"block {block.name} takes {len(block.params)} parameter(s), got {len(layer.args)}",
                             layer.arg_spans.get(len(block.params)) or layer.span,
                             f"{block.name}({', '.join(decls)})")
        given = {p.name: (v, layer.arg_spans.get(i)) for i, (p, v) in enumerate(zip(block.params, layer.args, strict=False))}
        for k, v in layer.kwargs:
            if k not in decls:
                close = difflib.get_close_matches(k, list(decls), n=1)
                raise self.error(f"block {block.name} has no parameter '{k}'", layer.span,
                                 f"did you mean '{close[0]}'?" if close else
                                 f"its parameters are: {', '.join(decls) or 'none'}")
            if k in given:
                raise self.error(f"parameter '{k}' of {block.name} is given twice", layer.arg_spans.get(k) or layer.span)
            given[k] = (v, layer.arg_spans.get(k))
        for p in block.params:
            if p.name in given:
                value, where = given[p.name]
            elif p.default is not None:
                value, where = self.evaluate(p.default, scope), p.default.span
            else:
                raise self.error(f"block {block.name} needs the parameter '{p.name}: {p.type}'", layer.span,
                                 notes=[(f"'{p.name}' is declared here", p.span)])
            scope.names[p.name] = self.check_param_type(block.name, p, value, where or layer.span)
            scope.used.add(p.name)

    def _param_decls(self, block: A.BlockDef) -> dict[str, A.ParamDecl]:
        """A block's parameter declarations by name; a name declared twice is an error."""
        decls: dict[str, A.ParamDecl] = {}
        for p in block.params:
            if p.name in decls:
                raise self.error(f"parameter '{p.name}' is declared twice in block {block.name}", p.span,
                                 notes=[("first declared here", decls[p.name].span)])
            decls[p.name] = p
        return decls

    def check_param_type(self, block: str, p: A.ParamDecl, value: Any, span: Span | None) -> Any:
        """Check a parameter value against ``int``, ``float``, ``list[int]``, ``tuple[...]`` ..."""
        if not matches_type(p.type, value):
            shown = f" ({value!r})" if isinstance(value, (int, float, str, list, tuple)) else ""
            raise self.error(f"parameter '{p.name}' of {block} is declared {p.type} but got {describe(value)}{shown}",
                             span, notes=[(f"'{p.name}' is declared here", p.span)])
        if p.type.replace(" ", "") == "layer" and value is not None:
            return self.as_layer(value, span)
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
                if stmt.name in scope.names:
                    raise self.error(f"'{stmt.name}' is already defined in this block", stmt.span)
                scope.names[stmt.name] = tensor
                scope.assigned[stmt.name] = stmt.span
                scope.inputs.add(stmt.name)
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
        value = self.evaluate(stmt.value, scope)
        if len(stmt.targets) == 1 and isinstance(value, OpLayer) and value.op.arity == 0:
            # a source op (a free parameter such as a class token) is applied where it is named
            path = self.ctx.path + (stmt.targets[0],)
            value = self.apply(value, [], path, stmt.span)[0]
        elif len(stmt.targets) == 1 and (is_layer(value) or isinstance(value, list) and layer_like(value)) \
                or isinstance(value, Absent):
            name = stmt.targets[0]
            layer = self.as_layer(value, stmt.value.span)
            value = Named(name, layer, stmt.span, path=self.ctx.path + (name,),
                          owner=self.ctx.owner + (name,))   # stable: re-applying the enclosing layer shares
        for t in stmt.targets:
            if t in scope.names and t != "_":
                raise self.error(f"'{t}' is already defined in this block", stmt.span,
                                 notes=[("first defined here", scope.assigned[t])] if t in scope.assigned else [])
        self.bind_targets(stmt.targets, value, scope, stmt.span)
        for t in stmt.targets:
            scope.assigned[t] = stmt.span

    def exec_output(self, stmt: A.OutputStmt, scope: Scope) -> Tensor:
        """``out expr``: the value must be a tensor; an annotation is checked."""
        value = self.evaluate(stmt.value, scope)
        if not isinstance(value, Tensor):
            shown = f" ({value!r})" if isinstance(value, (int, float, str)) else ""
            raise self.error(f"`out` needs a tensor, got {describe(value)}{shown}", stmt.value.span,
                             "apply the layer to an input: `out x |> layer`" if is_layer(value) else None)
        if stmt.type is not None:
            self.unify(stmt.type, value, scope, f"output '{stmt.name}'", stmt.type.span, stmt.span)
        return value

    def check_unused(self, scope: Scope) -> None:
        """Every assigned name and input must be used."""
        for name, span in scope.assigned.items():
            value = scope.names.get(name)
            used = name in scope.used or (isinstance(value, Named) and value.uses > 0) or name.startswith("_")
            if not used:
                what = "input" if name in scope.inputs else "layer" if isinstance(value, Named) else \
                    "value" if isinstance(value, Tensor) else "name"
                raise self.error(f"{what} '{name}' is defined but never used", span,
                                 "remove it, use it in the dataflow, or start its name with '_' to keep it")

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
            value = self.evaluate(d, scope)
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
        notes = [(f"{what} is declared here", where)]
        notes += [(f"the tensor {actual} comes from here", tensor.span)] if tensor.span else []
        declared = "[" + ", ".join(_dim_text(d) for d in texpr.dims) + "]"
        dtype = self.dtype(texpr)
        if len(texpr.dims) != actual.rank:
            raise self.error(f"{what} expects a rank-{len(texpr.dims)} tensor {declared}, got the rank-{actual.rank} "
                             f"tensor {actual}", call_span or where, cls=ShapeError, notes=notes)
        if dtype != actual.dtype:
            raise self.error(f"{what} expects {dtype} {declared}, got {actual.dtype} {actual}", call_span or where,
                             cls=ShapeError, notes=notes)
        for i, (d, got) in enumerate(zip(texpr.dims, actual.shape, strict=False)):
            if isinstance(d, A.Name) and not scope.get_local(d.id)[0]:
                scope.names[d.id] = got
                scope.used.add(d.id)
                continue
            want = self.evaluate(d, scope)
            if isinstance(want, bool) or not isinstance(want, (int, SymDim)):
                raise self.error(f"a dimension must be an int or a symbol, got {describe(want)}", d.span)
            if want != got:
                said = _dim_text(d) if _dim_text(d) == str(want) else f"{_dim_text(d)} = {want}"
                raise self.error(f"{what} expects {declared}, got {actual}: dim {i} should be {said} but is {got}",
                                 call_span or where, cls=ShapeError, notes=notes)


def _dim_text(d: A.Expr) -> str:
    """A declared dim as written: names, numbers and arithmetic on them."""
    if isinstance(d, A.Name):
        return d.id
    if isinstance(d, A.Num):
        return str(d.value)
    if isinstance(d, A.BinOp) and d.op in ("+", "-", "*", "//", "%"):
        left, right = _dim_text(d.left), _dim_text(d.right)
        wrap = d.op in ("*", "//", "%")
        left = f"({left})" if wrap and isinstance(d.left, A.BinOp) and d.left.op in ("+", "-") else left
        right = f"({right})" if isinstance(d.right, A.BinOp) and (wrap or d.op == "-") else right
        return f"{left} {d.op} {right}" if not wrap else f"{left}{d.op}{right}"
    return "…"


def _tuples(value: Any) -> Any:
    """Spec lists become tuples: op attributes are strict (no '8' for 8, no true for 1) and hashable."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


def matches_type(type_name: str, value: Any) -> bool:  # noqa: C901 - one case per type form
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
            return len(parts) == len(value) and all(matches_type(t, v) for t, v in zip(parts, value, strict=False))
        return all(matches_type(inner, v) for v in value)
    if type_name in ("list", "tuple"):
        return isinstance(value, (list, tuple))
    if type_name == "layer":
        return isinstance(value, (Layer, OpRef, BlockRef)) or is_layer(value)
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
