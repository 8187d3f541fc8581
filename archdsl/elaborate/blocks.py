"""Block bodies: parameters bound and type-checked, inputs unified, statements run, outputs collected."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from archdsl.elaborate import dataflow, param_types
from archdsl.elaborate.apply import Applier
from archdsl.elaborate.expressions import Evaluator
from archdsl.elaborate.scope import Scope, place
from archdsl.elaborate.session import Session
from archdsl.elaborate.shapes import Shapes
from archdsl.elaborate.values import (
    Absent,
    BlockLayer,
    Named,
    OpLayer,
    Tensor,
    Unnamed,
    describe,
    is_layer,
    layer_like,
)
from archdsl.errors import ArchError
from archdsl.ir.types import Span
from archdsl.syntax import ast as A


class Blocks:
    """Runs block bodies for the :class:`Applier` (and a model's body for the elaborator)."""

    def __init__(self, session: Session, evaluator: Evaluator, applier: Applier, shapes: Shapes) -> None:
        self.session = session
        self.evaluator = evaluator
        self.applier = applier
        self.shapes = shapes
        self.shortcuts = session.shortcuts

    def expand(self, layer: BlockLayer, inputs: list[Tensor], span: Span) -> list[Tensor]:
        """Bind ``layer``'s parameters in a fresh scope and run its body on ``inputs``."""
        scope = Scope(layer.namespace)
        self.bind_params(layer, scope)
        return self.run_body(layer.block, scope, inputs, span)

    # -- parameters -----------------------------------------------------------------------------
    def bind_params(self, layer: BlockLayer, scope: Scope) -> None:
        """Positional then keyword arguments, defaults for the rest, each checked against its type."""
        block, error = layer.block, self.session.error
        decls = self._param_decls(block)
        if len(layer.args) > len(block.params):
            raise error(f"block {block.name} takes {len(block.params)} parameter(s), got {len(layer.args)}",
                        layer.arg_spans.get(len(block.params)) or layer.span, f"{block.name}({', '.join(decls)})")
        args = layer.args
        given: dict[str, tuple[Any, str | int]] | None = None     # (None: positional arguments only)
        if layer.kwargs or not self.shortcuts:
            given = {p.name: (v, i) for i, (p, v) in enumerate(zip(block.params, args, strict=False))}
            for k, v in layer.kwargs:
                if k not in decls:
                    close = difflib.get_close_matches(k, list(decls), n=1)
                    raise error(f"block {block.name} has no parameter '{k}'", layer.span,
                                f"did you mean '{close[0]}'?" if close else
                                f"its parameters are: {', '.join(decls) or 'none'}")
                if k in given:
                    raise error(f"parameter '{k}' of {block.name} is given twice",
                                layer.arg_spans.get(k) or layer.span, "give it once, by position or by name")
                given[k] = (v, k)
        key: str | int | None
        for i, p in enumerate(block.params):
            if given is None and i < len(args):
                value, key = args[i], i
            elif given is not None and p.name in given:
                value, key = given[p.name]
            elif p.default is not None:
                value, key = self.evaluator.evaluate(p.default, scope), None
            else:
                raise error(f"block {block.name} needs the parameter '{p.name}: {p.type}'", layer.span,
                            f"pass it: {block.name}(..., {p.name}=...), or give it a default in the block",
                            notes=[(f"'{p.name}' is declared here", p.span)])
            if p.type.name != "layer" and param_types.matches(p.type, value):    # the usual case: no place needed
                scope.names[p.name] = param_types.coerce(p.type, value)
            else:                       # spans are made when read: only for an error or a layer made here
                where = layer.arg_spans.get(key) if key is not None else p.default.span if p.default else None
                scope.names[p.name] = self.check_param_type(block.name, p, value, where or layer.span)
            scope.used.add(p.name)

    def _param_decls(self, block: A.BlockDef) -> dict[str, A.ParamDecl]:
        """A block's parameter declarations by name; a name declared twice is an error."""
        decls: dict[str, A.ParamDecl] = {}
        for p in block.params:
            if p.name in decls:
                raise self.session.error(f"parameter '{p.name}' is declared twice in block {block.name}", p.span,
                                         "rename or remove one of them",
                                         notes=[("first declared here", decls[p.name].span)])
            decls[p.name] = p
        return decls

    def check_param_type(self, block: str, p: A.ParamDecl, value: Any, span: Span | None) -> Any:
        """Check a parameter value against its declared type; a ``layer`` parameter holds a layer."""
        if not param_types.matches(p.type, value):
            shown = f" ({value!r})" if isinstance(value, (int, float, str, list, tuple)) else ""
            raise self.session.error(f"parameter '{p.name}' of {block} is declared {p.type} but got "
                                     f"{describe(value)}{shown}", span, f"pass a value of type {p.type}",
                                     notes=[(f"'{p.name}' is declared here", p.span)])
        if p.type.name == "layer" and value is not None:
            return self.evaluator.containers.as_layer(value, span)
        return param_types.coerce(p.type, value)

    # -- statements -----------------------------------------------------------------------------
    def run_body(self, block: A.BlockDef, scope: Scope, inputs: list[Tensor], span: Span) -> list[Tensor]:
        """Execute a block's statements in order and return its outputs."""
        body = block.body                   # (read once: a released body is parsed again when read)
        fixed, declared = self._fixed_inputs(block, body)
        variadic = fixed < declared
        if len(inputs) < fixed or (len(inputs) > fixed and not variadic):
            raise self.session.error(f"block {block.name} takes {'at least ' if variadic else ''}{fixed} input(s), "
                                     f"got {len(inputs)}", span, f"its `in` statements declare what {block.name} "
                                     "takes: apply it to that many tensors (`x |> b` or `b(x, y)`)")
        outputs: list[Tensor] = []
        feed = iter(inputs)
        session = self.session
        scope.block, failed = block, session.errors.failed
        exec_assign, exec_output = self.exec_assign, self.exec_output
        for index, stmt in enumerate(body):
            scope.current = index
            try:            # an error: recorded, the next statement runs (see dataflow.recover)
                if isinstance(stmt, A.Assign):
                    exec_assign(stmt, scope)
                elif isinstance(stmt, A.OutputStmt):
                    outputs.append(exec_output(stmt, scope))
                else:
                    self.exec_input(stmt, scope, feed, block, span)
            except (dataflow.Poisoned, ArchError) as exc:
                if not dataflow.recover(session, scope, stmt, exc):
                    raise
        scope.current = None
        dataflow.failed_since(session, failed)      # errors in this body: skip the statement that applied it
        if not outputs:
            raise session.error(f"block {block.name} has no `out` statement", block.span,
                                "a block returns its result with `out expr`")
        self.check_unused(scope, block)
        return outputs

    def exec_input(self, stmt: A.InputStmt, scope: Scope, feed: Iterator[Tensor], block: A.BlockDef,
                   span: Span) -> None:
        """``in x: [N, C]``: the next input (``in *xs``: the rest, as a list), unified with its declared type."""
        tensors = list(feed) if stmt.variadic else [next(feed)]
        shapes, texpr = self.shapes, stmt.type
        for tensor in tensors:
            actual = tensor.type
            if self.shortcuts and texpr.dtype is None and actual.dtype == "float32" \
                    and shapes.plain_names(texpr.dims, actual.shape, scope):
                continue        # unify's usual case, without making the message and place it needs for an error
            shapes.unify(texpr, tensor, scope, f"input '{stmt.name}' of {block.name}", stmt.span, span)
        if stmt.where is not None:
            self.shapes.check_where(stmt.where, scope, f"input '{stmt.name}' of {block.name}", stmt.span, span)
        if stmt.name in scope.names:
            raise self.session.error(f"'{stmt.name}' is already defined in this block", stmt.span,
                                     "a name is defined once per block: rename the input")
        scope.names[stmt.name] = tensors if stmt.variadic else tensors[0]
        scope.assigned[stmt.name] = stmt
        scope.inputs.add(stmt.name)

    def _fixed_inputs(self, block: A.BlockDef, body: tuple[A.Stmt, ...]) -> tuple[int, int]:
        """How many inputs the block always takes, and how many `in` statements it has; a variadic input
        (``in *xs``) may only come last."""
        decls = []
        for stmt in body:
            if isinstance(stmt, A.InputStmt):
                decls.append(stmt)
        for d in decls[:-1]:
            if d.variadic:
                raise self.session.error(f"the variadic input '*{d.name}' must be the last input of {block.name}",
                                         d.span, "it takes all the tensors after the fixed inputs")
        return len(decls) - (1 if decls and decls[-1].variadic else 0), len(decls)

    def exec_assign(self, stmt: A.Assign, scope: Scope) -> None:
        """``name = expr``: a layer gets the name as its module name; a value is just bound."""
        expr = stmt.value
        value = self.evaluator.dispatch[type(expr)](expr, scope)    # (Evaluator.evaluate, inline)
        ctx = self.session.ctx          # (a syntax node makes its span on each read: the statement is passed on)
        targets = stmt.targets
        if self.shortcuts and len(targets) == 1 and type(value) is OpLayer and value.op.arity != 0:
            # the usual `fc = Linear(64)`
            name = targets[0]
            if name in scope.names and name != "_":
                raise self._defined_twice(name, stmt, scope)
            scope.names[name] = Named(name, value, stmt, ctx.path + (name,), ctx.owner + (name,))    # (path, owner)
            scope.assigned[name] = stmt
            return
        if len(targets) == 1 and isinstance(value, Unnamed):    # idx = Buffer(expr): the buffer's name
            value = self.applier.apply(value.layer, list(value.inputs), ctx.path + (targets[0],),
                                       self.session.span_of(stmt))[0]
        elif len(targets) == 1 and isinstance(value, OpLayer) and value.op.arity == 0:
            # a source op (a free parameter such as a class token) is applied where it is named
            value = self.applier.apply(value, [], ctx.path + (targets[0],), self.session.span_of(stmt))[0]
        elif len(targets) == 1 and (is_layer(value) or isinstance(value, list) and layer_like(value)) \
                or isinstance(value, Absent):
            name = targets[0]
            layer = self.evaluator.containers.as_layer(value, stmt.value)
            value = Named(name, layer, stmt, path=ctx.path + (name,),
                          owner=ctx.owner + (name,))   # stable: re-applying the enclosing layer shares
        for t in targets:
            if t in scope.names and t != "_":
                raise self._defined_twice(t, stmt, scope)
        self.evaluator.containers.bind_targets(targets, value, scope, stmt)
        for t in targets:
            scope.assigned[t] = stmt

    def _defined_twice(self, name: str, stmt: A.Assign, scope: Scope) -> ArchError:
        return self.session.error(f"'{name}' is already defined in this block", stmt.span,
                                  "a name is defined once per block: give this value a new name",
                                  notes=[("first defined here", place(scope.assigned[name]))]
                                  if name in scope.assigned else [])

    def exec_output(self, stmt: A.OutputStmt, scope: Scope) -> Tensor:
        """``out expr``: the value must be a tensor; an annotation is checked."""
        expr = stmt.value
        value = self.evaluator.dispatch[type(expr)](expr, scope)    # (Evaluator.evaluate, inline)
        if not isinstance(value, Tensor):
            shown = f" ({value!r})" if isinstance(value, (int, float, str)) else ""
            raise self.session.error(f"`out` needs a tensor, got {describe(value)}{shown}", stmt.value.span,
                                     "apply the layer to an input: `out x |> layer`" if is_layer(value) else
                                     "`out` returns a tensor: an input, or layers and ops applied to one")
        if stmt.type is not None:
            self.shapes.unify(stmt.type, value, scope, f"output '{stmt.name}'", stmt.type.span, stmt.span)
        return value

    def check_unused(self, scope: Scope, block: A.BlockDef) -> None:
        """Names this instantiation does not use: dead code when no statement reads them (a warning; an input:
        an error), fine when one does (the branch a static conditional did not take)."""
        unused = []
        for name, where in scope.assigned.items():
            value = scope.names.get(name)
            used = name in scope.used or (isinstance(value, Named) and value.uses > 0) or name.startswith("_")
            if not used:
                what = "input" if name in scope.inputs else "layer" if isinstance(value, Named) else \
                    "value" if isinstance(value, Tensor) else "name"
                unused.append((what, name, place(where)))
        dataflow.report_unused(self.session, block, unused)
