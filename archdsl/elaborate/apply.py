"""Layer application: ops become nodes, blocks are expanded (or replayed), containers are walked.

The context of an application (module path, owners, depth: ``session.ctx``) is set on entry and restored on exit,
by ``session.within`` or, on the paths taken once per node or block, by the same assignments inline.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pydantic

from archdsl.elaborate import builder as graph_builder
from archdsl.elaborate import dataflow
from archdsl.elaborate.replay import Expansion, arguments_key, plain_key, replay
from archdsl.elaborate.session import Ctx, Session
from archdsl.elaborate.ties import tie_params
from archdsl.elaborate.values import (
    Absent,
    BlockLayer,
    Named,
    OpLayer,
    ReparamLayer,
    SeqLayer,
    Tensor,
    describe,
    fresh_uid,
    is_layer,
)
from archdsl.errors import ArchError, Diagnostic, LimitError, OpError, ShapeError
from archdsl.ir.types import Span, TensorType
from archdsl.ops.base import OpDef, rules_of
from archdsl.ops.tensor import AddN
from archdsl.syntax.ast import release_body

if TYPE_CHECKING:
    from archdsl.elaborate.blocks import Blocks

MAX_DEPTH = 64
RULE_MEMO = 2048          # rule results an Applier remembers per generation, two at most (see Applier.rules)
TYPE_MEMO = 1 << 16       # distinct output types an Applier shares at once (see Applier.types)
RELEASE_FROM_TEXT = 1 << 18    # block bodies of spec files this long (256 KiB: thousands of blocks) are let go once
                               # applied; in smaller files their syntax is small next to the graph, and parsing a
                               # body again (~0.1-1 ms) would cost more than it saves (ResNet-152: +20%)
EXPANSION_MEMO = 4096     # block applications an Applier remembers at once for replay (a spec of many distinct
                          # applications would otherwise keep one record per application until the end)


class Applier:
    """Applies layers to tensors in the session's current context, adding nodes to its graph."""

    def __init__(self, session: Session, blocks: Blocks | None = None) -> None:
        self.session = session
        self.builder = session.builder
        self._blocks = blocks                              # set by the elaborator once both parts exist
        self.expansions: dict[tuple, Expansion] = {}       # named block applications, for replay (EXPANSION_MEMO)
        self.ops: dict[tuple, OpDef] = {}                   # (op class, its arguments) -> the op made from them
        self.by_args: dict[tuple, OpDef] = {}               # (op class, positional scalars, their types) -> the same
        self.shortcuts = session.shortcuts
        # (id of an op, ids of its input types) -> the rules' results (apply_rules memoises by value: this skips
        # hashing the op and the types for the same objects, as most nodes of a large spec have). Two generations
        # of at most RULE_MEMO entries each: when the young one fills it becomes the old one, and an entry found
        # in the old one moves back, so the results in use stay (a clear would drop them all at once)
        self.rules: dict[tuple, tuple] = {}
        self.old_rules: dict[tuple, tuple] = {}
        # output types by value -> the one object the rules' results use for them (a unit of new widths makes a
        # new type object; the next node's rule, keyed by the type's identity, then finds the one it had before)
        self.types: dict[TensorType, TensorType] = {}
        self.handlers: dict[type, Callable[..., list[Tensor]]] = {
            OpLayer: self.apply_op_layer, BlockLayer: self.apply_block, SeqLayer: self.apply_seq,
            ReparamLayer: self.apply_reparam, Named: self.apply_named, Absent: self.apply_absent}

    @property
    def blocks(self) -> Blocks:
        """How block applications expand."""
        if self._blocks is None:
            raise RuntimeError("the applier has no block expander: the elaborator sets one before applying")
        return self._blocks

    @blocks.setter
    def blocks(self, blocks: Blocks) -> None:
        self._blocks = blocks

    def apply_value(self, layer: Any, inputs: list[Tensor], span: Span) -> Any:
        """Apply ``layer`` to ``inputs`` in the current context; one output or a tuple of outputs."""
        outs = self.apply(layer, inputs, None, span)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def apply(self, layer: Any, inputs: list[Tensor], at: tuple[str, ...] | None, span: Span) -> list[Tensor]:
        """Apply at module path ``at`` (None: an anonymous, inline use)."""
        handler = self.handlers.get(type(layer))      # one lookup by the value's exact type
        if handler is None:
            if isinstance(layer, list) and is_layer(layer):
                return self.apply_seq(SeqLayer(tuple((None, v) for v in layer), span), inputs, at, span)
            if isinstance(layer, Named):
                return self.apply_named(layer, inputs, at, span)
            if isinstance(layer, Absent):
                return self.apply_absent(layer, inputs, at, span)
            raise self.session.error(f"{describe(layer)} cannot be applied to tensors", span,
                                     "apply a layer, an op or a block: `x |> Conv2d(...)`, `relu(x)`")
        return handler(layer, inputs, at, span)

    def apply_named(self, layer: Named, inputs: list[Tensor], at: tuple[str, ...] | None,
                    span: Span) -> list[Tensor]:
        """A named layer applies under its own path and owner (``at`` is its path, whatever the caller's)."""
        layer.uses += 1
        scope = layer.path if layer.scope is None else layer.scope
        inner = layer.layer
        if type(inner) is OpLayer and self.shortcuts:   # one node: its scope and owner given, no context entered
            if inner.kwargs:
                return self.apply_op_layer(inner, inputs, layer.path, span, scope, layer.owner)
            return self.add(self.make_op(inner), inputs, inner.span or span, layer.path, scope, layer.owner)
        session = self.session
        outer = session.ctx
        session.ctx = Ctx(scope, layer.owner, outer.depth)
        try:
            return self.apply(inner, inputs, layer.path, span)
        finally:
            session.ctx = outer

    def apply_absent(self, layer: Absent, inputs: list[Tensor], at: tuple[str, ...] | None,
                     span: Span) -> list[Tensor]:
        """An absent layer is the identity on one tensor."""
        if len(inputs) != 1:
            raise self.session.error(f"an absent layer passes one tensor through, got {len(inputs)}", span,
                                     "an absent layer is the identity: give it a single input")
        return inputs

    def _anonymous(self, at: tuple[str, ...] | None) -> tuple[tuple[str, ...], Ctx]:
        """An unnamed container applies under the enclosing path, with a fresh owner identity."""
        ctx = self.session.ctx
        if at is None:
            return ctx.path, Ctx(ctx.path, ctx.owner + (fresh_uid(),), ctx.depth)
        return at, ctx

    # -- ops -----------------------------------------------------------------------------------
    def make_op(self, layer: OpLayer) -> OpDef:
        """Bind positional and keyword arguments to the op's attributes and validate them."""
        op, args = layer.op, layer.args
        if layer.kwargs or not self.shortcuts:
            return self._make_op(layer)
        # the usual Linear(64): the op made before from equal positional scalars of the same types
        fast = (op, args, *map(type, args))
        try:
            made = self.by_args.get(fast)
        except TypeError:               # an unhashable argument (a list)
            return self._make_op(layer)
        if made is not None:
            return made
        made = self._make_op(layer)
        if all(type(a) in _SCALARS for a in args):      # (then the key is exact, as _scalar_key's)
            self.by_args[fast] = made
        return made

    def _make_op(self, layer: OpLayer) -> OpDef:
        op, args = layer.op, layer.args
        error = self.session.error
        attrs: dict[str, Any] = {}
        if len(args) > len(op.positional):
            raise error(f"{op.__name__} takes at most {len(op.positional)} positional arguments "
                        f"({', '.join(op.positional) or 'none'}), got {len(args)}", layer.span,
                        f"name the others: {op.__name__}(..., name=value); `archdsl ops {op.name}` lists them")
        attrs.update(zip(op.positional, args, strict=False))
        for k, v in layer.kwargs:
            if k in attrs:
                raise error(f"{op.__name__}: argument '{k}' is given twice", layer.span,
                            "give it once, by position or by name")
            attrs[k] = v
        values = {k: _tuples(v) for k, v in attrs.items()}
        key = _scalar_key(values) or plain_key(tuple(values.items()))   # type-exact: Linear(8) is not Linear(8.0)
        if key is not None:
            made = self.ops.get((op, key))
            if made is not None:                    # one object per distinct op: validated once, and the
                return made                         # rule cache then finds it by identity
        try:
            made = op(**values)
        except pydantic.ValidationError as exc:
            raise self._validation_error(layer, exc) from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise error(f"{op.__name__}: bad arguments: {exc}", layer.span,
                        f"`archdsl ops {op.name}` shows its signature") from None
        if key is not None:
            self.ops[(op, key)] = made
        return made

    def _validation_error(self, layer: OpLayer, exc: pydantic.ValidationError) -> ArchError:
        """The first pydantic complaint as a spec error pointing at the offending argument."""
        op, span, error = layer.op, layer.span, self.session.error
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        fields = list(op.model_fields)
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(field, fields, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"{op.__name__} takes: {', '.join(fields) or 'nothing'}"
            return error(f"{op.__name__} has no argument '{field}'", span, hint)
        if err["type"] == "missing":
            return error(f"{op.__name__} needs the argument '{field}'", span,
                         f"{op.__name__}({', '.join(op.positional)}, ...)" if op.positional else None)
        where = layer.arg_spans.get(op.positional.index(field) if field in op.positional else -1)
        where = layer.arg_spans.get(field) or where or span
        msg = str(err["msg"])
        msg = msg[len("Value error, "):] if msg.startswith("Value error, ") else msg
        return error(f"{op.__name__}: bad value for '{field}': {msg[:1].lower()}{msg[1:]}", where,
                     f"got {describe(err.get('input'))} ({err.get('input')!r})")

    def apply_op_layer(self, layer: OpLayer, inputs: list[Tensor], at: tuple[str, ...] | None, span: Span,
                       path: tuple[str, ...] | None = None, owner: tuple[int | str, ...] | None = None) -> list[Tensor]:
        """One node: resolve, infer types, declare parameters (``tie_weight=wte``: use layer wte's weight).
        ``path`` and ``owner``: the node's scope and parameter owner (None: the current context's)."""
        if path is None or owner is None:
            ctx = self.session.ctx
            path, owner = ctx.path, ctx.owner
        kwargs = layer.kwargs
        if kwargs and any(k.startswith("tie_") for k, _ in kwargs):
            ties = {k.removeprefix("tie_"): v for k, v in kwargs if k.startswith("tie_")}
            layer = replace(layer, kwargs=tuple((k, v) for k, v in kwargs if not k.startswith("tie_")))
            return self.add(self.make_op(layer), inputs, layer.span or span, at, path, owner, ties=ties)
        return self.add(self.make_op(layer), inputs, layer.span or span, at, path, owner)

    def apply_op(self, op: OpDef, inputs: list[Tensor], span: Span | None,
                 at: tuple[str, ...] | None = None, tags: tuple[str, ...] = (),
                 ties: dict[str, Any] | None = None) -> list[Tensor]:
        """Add a node for ``op`` on ``inputs`` in the current context; returns its output tensors."""
        ctx = self.session.ctx
        return self.add(op, inputs, span, at, ctx.path, ctx.owner, tags, ties)

    def add(self, op: OpDef, inputs: list[Tensor], span: Span | None, at: tuple[str, ...] | None,
            path: tuple[str, ...], owner: tuple[int | str, ...], tags: tuple[str, ...] = (),
            ties: dict[str, Any] | None = None) -> list[Tensor]:
        """Add a node for ``op`` on ``inputs`` in scope ``path``, its parameters (at module path ``at``) owned by
        ``owner``; returns its output tensors."""
        arity = op.arity
        if arity is not None and len(inputs) != arity:
            raise self.session.error(f"{op.__class__.__name__} takes {op.arity} tensor input(s), got {len(inputs)}",
                                     span, f"`archdsl ops {op.name}` shows its inputs")
        if arity == 1:
            first = inputs[0].type
            key: tuple = (id(op), id(first))
            known = self.rules.get(key)
            if known is None:
                known = self._rule_miss(key, op, [first], inputs, span)
        else:
            types = [t.type for t in inputs]
            key = (id(op), *map(id, types))
            known = self.rules.get(key)
            if known is None:
                known = self._rule_miss(key, op, types, inputs, span)
        op, outs, params = known[0], known[1], known[2]     # (read only: shared by the nodes it types)
        builder = self.builder
        module = ".".join(at) if at else None
        mapping: dict[str, str]
        if params:
            if module is None:
                raise self.session.error(f"{op.__class__.__name__} has parameters, so it needs a name", span,
                                         f"declare it first: `my_{op.name} = {op.__class__.__name__}(...)`, "
                                         f"then use `x |> my_{op.name}`")
            builder.claim_module(module, owner, span)
            mapping = builder.declare_params(module, tuple((k, s) for k, s in params if k not in ties)
                                             if ties else params, span)
        else:
            mapping = {}
        if ties:
            mapping = {**mapping, **tie_params(self.session, builder.params, op, dict(params), ties, span)}
        if len(inputs) == 1:
            source = inputs[0]
            names = builder.add_node(op, [source.value], outs, mapping, module, path, span, tags,
                                     source.node if self.shortcuts else None)
        else:
            names = builder.add_node(op, [t.value for t in inputs], outs, mapping, module, path, span, tags)
        node = builder.nodes[-1]
        if len(names) == 1:
            return [Tensor(names[0], outs[0], span, node)]
        return [Tensor(n, t, span, node) for n, t in zip(names, outs, strict=False)]

    def _rule_miss(self, key: tuple, op: OpDef, types: list[TensorType], inputs: list[Tensor],
                   span: Span | None) -> tuple:
        """The rules' results for a key the young memo lacks: from the old generation, else computed (the output
        types shared by value); remembered in the young one."""
        rules = self.rules
        known = self.old_rules.get(key)
        if known is None:
            try:
                resolved, outs, params = rules_of(op, types)
            except (OpError, ArithmeticError, ValueError, TypeError, IndexError, KeyError) as exc:
                raise self._op_error(op, exc, inputs, span) from None
            shared = self.types
            if len(shared) >= TYPE_MEMO:
                shared.clear()
            same = tuple([shared.setdefault(t, t) for t in outs])
            if any(a is not b for a, b in zip(same, outs, strict=True)):
                outs = same
            # the entry holds the op and the types, so the ids in its key stay theirs while it is remembered
            known = (resolved, outs, params, op, types)
        if len(rules) >= RULE_MEMO:
            self.old_rules = rules
            rules = self.rules = {}
        rules[key] = known
        return known

    def _op_error(self, op: OpDef, exc: Exception, inputs: list[Tensor], span: Span | None) -> ArchError:
        """A shape-rule failure, naming the op once and pointing at where each input came from."""
        text = str(exc)
        for prefix in (f"{op.name}: ", f"{op.name} "):
            if text.startswith(prefix):
                text = text[len(prefix):]
        if not isinstance(exc, OpError):
            text = f"cannot compute the output shape with these attributes ({text})"
        notes = [(f"input {i + 1}, {t.type}, comes from here" if len(inputs) > 1 else f"the input {t.type} comes "
                  "from here", t.span) for i, t in enumerate(inputs)]
        hint = getattr(exc, "hint", None) or (f"check the attributes against `archdsl ops {op.__class__.__name__}` "
                                              "(it lists each one's meaning and range)")
        return self.session.error(f"{op.__class__.__name__}: {text}", span, hint, cls=ShapeError, notes=notes)

    # -- containers ----------------------------------------------------------------------------
    def apply_seq(self, layer: SeqLayer, inputs: list[Tensor], at: tuple[str, ...] | None,
                  span: Span) -> list[Tensor]:
        """Entries in order; unnamed entries are named by their index among present entries.

        An unnamed container names its entries under the enclosing block (``features.0.0`` for a
        ``seq[Conv2d(...), BatchNorm2d()]`` returned by a block applied at ``features.0``).
        """
        values = inputs
        index = 0
        at, ctx = self._anonymous(at)
        session, apply = self.session, self.apply
        outer = session.ctx
        session.ctx = ctx
        try:
            for key, entry in layer.entries:
                if isinstance(entry, Absent):
                    continue
                name = key if key is not None else str(index)
                index += 1
                values = _as_list(apply(entry, values, at + (name,), getattr(entry, "span", None) or span))
        finally:
            session.ctx = outer
        return values

    def apply_reparam(self, layer: ReparamLayer, inputs: list[Tensor], at: tuple[str, ...] | None,
                      span: Span) -> list[Tensor]:
        """Branches on the same input, summed by one node tagged 'reparam'.

        An unnamed reparam block puts its (named) branches directly under the enclosing block, as in
        RepVGG's ``out relu(reparam { rbr_dense = ...; rbr_1x1 = ... }(x))``.
        """
        outs: list[Tensor] = []
        outer = self.session.ctx
        at, ctx = self._anonymous(at)
        with self.session.within(ctx):
            for name, branch in layer.branches:
                if isinstance(branch, Absent):
                    continue
                outs += _as_list(self.apply(branch, inputs, at + (name,), getattr(branch, "span", None) or span))
        if not outs:
            raise self.session.error("every branch of this reparam block is absent", layer.span,
                                     "keep at least one branch present for every parameter value")
        if len(outs) == 1:
            self._claim_nested_sum(outs[0], at, layer.merged)
            return outs
        tags = ("reparam",) if layer.merged is None else ("reparam", f"merge-as:{layer.merged}")
        with self.session.within(Ctx(at, outer.owner, outer.depth)):   # the sum's scope is the block's path
            return self.apply_op(AddN(), outs, layer.span, at=None, tags=tags)

    def _claim_nested_sum(self, out: Tensor, at: tuple[str, ...], merged: str | None) -> None:
        """A reparam block whose only branch is another reparam block is that block: its sum moves to ``at``
        (MobileOne's pointwise blocks merge into ``stages.1.1.reparam_conv``, as timm names them)."""
        nodes = self.builder.nodes
        if nodes and "reparam" in nodes[-1].tags and nodes[-1].outputs == (out.value,):
            tags = nodes[-1].tags if merged is None else \
                tuple(t for t in nodes[-1].tags if not t.startswith("merge-as:")) + (f"merge-as:{merged}",)
            nodes[-1] = nodes[-1].model_copy(update={"scope": at, "tags": tags})

    # -- blocks --------------------------------------------------------------------------------
    def apply_block(self, layer: BlockLayer, inputs: list[Tensor], at: tuple[str, ...] | None,
                    span: Span) -> list[Tensor]:
        """Expand a block: bind parameters and inputs, run its statements, collect its outputs."""
        session, builder = self.session, self.builder
        outer = session.ctx
        if outer.depth >= MAX_DEPTH:
            raise self._depth_error(layer, span)
        session.where = span
        path = at if at is not None else outer.path
        owner = outer.owner if at is not None else outer.owner + (fresh_uid(),)
        key = self._expansion_key(layer, inputs) if at else None
        known = self.expansions.get(key) if key is not None else None     # (key is None without at)
        if known is not None and at is not None:
            self._budget(layer, len(known.nodes), span)     # before cloning, not after
            return dataflow.from_site(replay(builder, known, at, inputs, owner + (fresh_uid(),)), span)
        first_node, first_doc = len(builder.nodes), len(builder.doc_order)
        block = layer.block
        session.ctx = Ctx(path, owner, outer.depth + 1)
        session.block_stack.append(block.name)
        session.sites.append(span)
        try:
            if block.doc and path:
                builder.add_doc(".".join(path), block.doc)
            outputs = self.blocks.expand(layer, inputs, span)
        finally:
            session.ctx = outer
            session.block_stack.pop()
            session.sites.pop()
        source = getattr(layer.namespace, "source", None)
        if (source is not None and len(source.text) >= RELEASE_FROM_TEXT
                and layer.block.name not in session.block_stack):     # not being expanded further out (a recursion)
            # a block applied once is not read again, most often: its body's syntax goes until it is (then it
            # is parsed again, once, and kept)
            release_body(layer.block, source)
        if at is not None and key is not None:
            if len(self.expansions) >= EXPANSION_MEMO:
                self.expansions.clear()
            self.expansions[key] = Expansion(at, tuple([t.value for t in inputs]), tuple(builder.nodes[first_node:]),
                                             tuple(outputs), builder.docs_since(first_doc))
        return dataflow.from_site(outputs, span)

    def _budget(self, layer: BlockLayer, adding: int, span: Span) -> None:
        """Refuse an expansion that would take the graph past the node limit, before making its nodes."""
        have, limit = len(self.builder.nodes), graph_builder.MAX_NODES
        if have + adding > limit:
            raise LimitError(Diagnostic(
                f"the model has more than {limit:,} nodes: this {layer.block.name} adds {adding:,} to {have:,}", span,
                "a block that applies another block twice at every level grows exponentially; "
                "check repeat counts and recursion"), self.session.sources)

    def _expansion_key(self, layer: BlockLayer, inputs: list[Tensor]) -> tuple | None:
        """Identity of a block application, when its arguments are plain data (see ``replay``)."""
        args = arguments_key(layer.args, layer.kwargs)
        if args is None or len(inputs) > 1 and len({t.value for t in inputs}) != len(inputs):
            return None
        return (id(layer.block), id(layer.namespace), self.session.ctx.depth, len(inputs), *(t.type for t in inputs),
                *args)

    def _depth_error(self, layer: BlockLayer, span: Span) -> ArchError:
        """Too deep: name the chain of blocks (usually one block applying itself)."""
        stack = self.session.block_stack
        chain = stack[-4:] + [layer.block.name]
        text = " -> ".join(chain) if len(stack) <= 4 else "… -> " + " -> ".join(chain)
        name = layer.block.name
        hint = f"block {name} applies itself; a recursion must stop within {MAX_DEPTH} levels" \
            if stack.count(name) > 1 else "are blocks applying each other?"
        return self.session.error(f"blocks nest deeper than {MAX_DEPTH} levels ({text})", span, hint, cls=LimitError)


_SCALARS = frozenset((bool, int, float, str, type(None)))


def _scalar_key(values: dict[str, Any]) -> tuple | None:
    """The ops cache's key for arguments that are all plain scalars (``Linear(64)``): one flat tuple, told apart from
    :func:`plain_key`'s (which starts with a type, never None); None for other arguments."""
    key: list[Any] = [None]
    for name, value in values.items():
        kind = type(value)
        if kind not in _SCALARS:
            return None
        key += (name, kind, value)
    return tuple(key)


def _as_list(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    return list(value)


def _tuples(value: Any) -> Any:
    """Spec lists become tuples: op attributes are strict (no '8' for 8, no true for 1) and hashable."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value
