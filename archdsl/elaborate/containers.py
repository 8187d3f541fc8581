"""Container expressions: lists, ``seq[...]``, ``seq{...}``, ``reparam``, comprehensions, and making layers."""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from archdsl.elaborate.builtins import MAX_REPEAT
from archdsl.elaborate.scope import Scope
from archdsl.elaborate.session import Session
from archdsl.elaborate.values import (
    Absent,
    BlockLayer,
    BlockRef,
    Layer,
    Named,
    OpLayer,
    OpRef,
    ReparamLayer,
    SeqLayer,
    describe,
    layer_like,
)
from archdsl.errors import LimitError
from archdsl.ir.types import Span
from archdsl.syntax import ast as A

if TYPE_CHECKING:
    from archdsl.elaborate.expressions import Evaluator

_ENTRY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


class Containers:
    """Evaluates container literals and comprehensions for an :class:`Evaluator`."""

    def __init__(self, session: Session, evaluator: Evaluator) -> None:
        self.session = session
        self.evaluator = evaluator

    def list_lit(self, e: A.ListLit, scope: Scope) -> Any:
        """``[a, b]`` (a list) or ``seq[a, b]`` (a sequential container)."""
        items = [self.evaluator.evaluate(x, scope) for x in e.items]
        if e.seq:
            return SeqLayer(tuple((None, self.as_layer(v, x)) for v, x in zip(items, e.items, strict=False)),
                            e.span)
        return items

    def seq_named(self, e: A.SeqNamed, scope: Scope) -> SeqLayer:
        """``seq{name: layer, ...}``."""
        entries = []
        for key, value in e.entries:
            name = key.id if isinstance(key, A.Name) else self.evaluator.evaluate(key, scope)
            entries.append((self.check_name(name, key.span),
                            self.as_layer(self.evaluator.evaluate(value, scope), value.span)))
        self.check_unique([k for k, _ in entries], e.span)
        return SeqLayer(tuple(entries), e.span)

    def reparam(self, e: A.Reparam, scope: Scope) -> ReparamLayer:
        """``reparam { a = ...; b = ... }``: named branches."""
        branches = tuple((name, self.as_layer(self.evaluator.evaluate(x, scope), x.span)) for name, x in e.branches)
        self.check_unique([k for k, _ in branches], e.span)
        return ReparamLayer(branches, e.span, self.merged_name(e))

    def reparam_list(self, e: A.ReparamList, scope: Scope) -> ReparamLayer:
        """Branches named by their index among the present ones (timm's ``conv_kxk.0`` ...)."""
        items = self.evaluator.evaluate(e.items, scope)
        present = [self.as_layer(v, e.span) for v in items if not isinstance(v, Absent)]
        return ReparamLayer(tuple((str(i), layer) for i, layer in enumerate(present)), e.span, self.merged_name(e))

    def merged_name(self, e: A.Reparam | A.ReparamList) -> str | None:
        """``reparam "fused" {...}``: the merged layer's name, a plain layer name."""
        if e.merged is not None and not e.merged.isidentifier():
            raise self.session.error(f"the merged layer's name must be a plain name such as \"fused_conv\", got "
                                     f"{e.merged!r}", e.span, "write reparam \"fused_conv\" { ... }")
        return e.merged

    def comprehension(self, e: A.Comprehension, scope: Scope) -> Any:
        """``[f(i) for i in ...]``, ``seq[...]`` and ``seq{key: value for ...}`` comprehensions."""
        evaluate = self.evaluator.evaluate
        results: list[tuple[Any, Any]] = []
        for inner in self.iterate(e.clauses, scope, e.span):
            if e.cond is not None and not self.evaluator.truth(evaluate(e.cond, inner), e.cond):
                continue
            key = evaluate(e.key, inner) if e.key is not None else None
            results.append((key, evaluate(e.elt, inner)))
        if not e.seq:
            return [v for _, v in results]
        entries = tuple((self.check_name(k, e.span) if k is not None else None, self.as_layer(v, e.elt))
                        for k, v in results)
        if e.key is not None:
            self.check_unique([k for k, _ in entries], e.span)
        return SeqLayer(entries, e.span)

    def iterate(self, clauses: tuple[A.CompFor, ...], scope: Scope, span: Span):
        """The scopes of a comprehension's iterations, counted against the limits."""
        count = itertools.count(1)
        for combo in self._iterate_rec(clauses, scope):
            if next(count) > MAX_REPEAT:
                raise self.session.error(f"comprehension makes more than {MAX_REPEAT:,} items", span,
                                         "repeat counts this large are almost certainly a mistake", cls=LimitError)
            self.session.spend(1, span)
            yield combo

    def _iterate_rec(self, clauses: tuple[A.CompFor, ...], scope: Scope):
        if not clauses:
            yield scope
            return
        first, rest = clauses[0], clauses[1:]
        items = self.evaluator.evaluate(first.iterable, scope)
        entries = self.entries(items)
        if entries is not None:                  # `for p in paths`: the container's entries
            items = [layer for _, layer in entries]
        if not isinstance(items, (list, tuple)):
            raise self.session.error(f"cannot loop over {describe(items)}", first.iterable.span,
                                     "loop over a list, range(...), zip(...) or a container")
        for item in items:
            inner = scope.child()
            self.bind_targets(first.targets, item, inner, first)
            yield from self._iterate_rec(rest, inner)

    def bind_targets(self, targets: tuple[str, ...], value: Any, scope: Scope, at: Any) -> None:
        """Bind ``a, b = value`` (tuple unpacking with a clear error on a length mismatch at ``at``: a span, or a
        syntax node whose span is read then)."""
        if len(targets) == 1:
            scope.names[targets[0]] = value
            return
        if not isinstance(value, (list, tuple)) or len(value) != len(targets):
            n = len(value) if isinstance(value, (list, tuple)) else 1
            raise self.session.error(f"cannot unpack {describe(value)} of {n} items into {len(targets)} names "
                                     f"({', '.join(targets)})", at if isinstance(at, Span) else at.span,
                                     "give as many names as there are items")
        for t, v in zip(targets, value, strict=False):
            scope.names[t] = v

    def check_name(self, name: Any, span: Span) -> str:
        """A container entry name must be a non-empty identifier-like string."""
        if not isinstance(name, (str, int)) or not _ENTRY_NAME.fullmatch(str(name)):
            raise self.session.error(f"layer name {name!r} must be letters, digits, '_' and '-'", span,
                                     "state_dict keys are dotted paths of such names")
        return str(name)

    def check_unique(self, names: list[str | None], span: Span) -> None:
        """Names inside one container are unique."""
        seen = set()
        for n in names:
            if n is not None and n in seen:
                raise self.session.error(f"the name '{n}' is used twice in this container", span,
                                         "each entry of a container has its own name")
            seen.add(n)

    # -- entries of a container ------------------------------------------------------------------
    def entries(self, value: Any) -> list[tuple[str, Any]] | None:
        """A container's present entries as (name, layer), named as applying the container names them;
        None when ``value`` is no container.

        An entry is a handle that applies where the container would apply it: ``layers[1]`` puts its parameters
        at ``layers.1`` (shared with the container's own use); an entry of an unnamed container (a ``layer``
        parameter, a literal) goes under the enclosing block, as applying that container would put it.
        """
        named = None
        while isinstance(value, Named) and isinstance(value.layer, Layer):
            named, value = value, value.layer
        if isinstance(value, SeqLayer):
            raw = value.entries
        elif isinstance(value, ReparamLayer):
            raw = value.branches
        else:
            return None
        if named is not None:
            label, path, owner = f"{named.name}.", named.path, named.owner
            scope = named.path if named.scope is None else named.scope
        else:
            ctx = self.session.ctx
            label, path, owner, scope = "", ctx.path, ctx.owner + (f"entries-of-{id(value)}",), ctx.path
        out: list[tuple[str, Any]] = []
        for key, entry in raw:
            if isinstance(entry, Absent):
                continue
            name = key if key is not None else str(len(out))
            out.append((name, Named(f"{label}{name}", entry, value.span, path=path + (name,), owner=owner,
                                    scope=scope)))
        return out

    def entry(self, container: Any, key: Any, span: Span) -> Any:
        """``layers[i]`` (position among present entries, negative from the end) or ``head["fc"]``/``head.fc``."""
        entries = self.entries(container)
        if entries is None:
            raise self.session.error(f"cannot index {describe(container)} with {describe(key)}", span,
                                     "index a container by an int (layers[0]) or an entry name (head[\"fc\"])")
        if isinstance(key, int) and not isinstance(key, bool):
            if not -len(entries) <= key < len(entries):
                raise self.session.error(f"index {key} is out of range for a container of {len(entries)} "
                                         f"entr{'y' if len(entries) == 1 else 'ies'}", span,
                                         f"indices run from 0 to {len(entries) - 1} (or from -1 backwards)")
            return entries[key][1]
        if not isinstance(key, str):
            raise self.session.error(f"a container is indexed by an int or an entry name, got {describe(key)}", span,
                                 "layers[0], layers[-1] or head[\"fc\"]")
        for name, layer in entries:
            if name == key:
                return layer
        names = [n for n, _ in entries]
        close = difflib.get_close_matches(key, names, n=1)
        what = f"the container '{container.name}'" if isinstance(container, Named) else "the container"
        raise self.session.error(f"{what} has no entry '{key}'", span, f"did you mean '{close[0]}'?" if close else
                                 f"its entries are: {', '.join(names) or 'none'}")

    def as_layer(self, value: Any, at: Any) -> Any:
        """Coerce op/block names and lists of layers to layers; anything else is an error. ``at``: the place (a
        span, None, or a syntax node whose span is read only when a layer is made here or for an error)."""
        if isinstance(value, (Layer, Named)):
            return value
        span = at if at is None or isinstance(at, Span) else self.session.span_of(at)
        if isinstance(value, OpRef):
            return OpLayer(value.op, (), (), span)
        if isinstance(value, BlockRef):
            return BlockLayer(value.block, value.namespace, (), (), span)
        if isinstance(value, list) and layer_like(value):
            return SeqLayer(tuple((None, self.as_layer(v, span)) for v in value), span)
        raise self.session.error(f"expected a layer here, got {describe(value)}", span,
                                 "a layer is an op or block call (Conv2d(...)), a named layer, or a container of them")


class ArgSpans(Mapping):
    """Where each argument of a call was written: position index (after the first ``skip``, which are the
    call's tensor inputs) or keyword name -> span. Made when first read: errors read it, most calls never do
    (a span is made on each read of a syntax node's)."""

    __slots__ = ("call", "skip", "_spans")

    def __init__(self, call: A.Call, skip: int = 0) -> None:
        self.call, self.skip = call, skip
        self._spans: dict[str | int, Span] | None = None

    def _table(self) -> dict[str | int, Span]:
        if self._spans is None:
            e, skip = self.call, self.skip
            spans: dict[str | int, Span] = {i - skip: a.span for i, a in enumerate(e.args) if i >= skip}
            spans.update({k: v.span for k, v in e.kwargs})
            self._spans = spans
        return self._spans

    def __getitem__(self, key: str | int) -> Span:
        return self._table()[key]

    def __iter__(self) -> Iterator[str | int]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


def arg_spans(e: A.Call, skip: int = 0) -> ArgSpans:
    """Where each argument of a call was written (see :class:`ArgSpans`)."""
    return ArgSpans(e, skip)
