"""Names visible inside one block application (or at a file's top level)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archdsl.elaborate.dataflow import POISON, Poisoned
from archdsl.elaborate.loader import Namespace
from archdsl.ir.types import Span


@dataclass(slots=True)
class Scope:
    """Local names of one block application; comprehension variables live in child scopes."""

    namespace: Namespace
    names: dict[str, Any] = field(default_factory=dict)
    assigned: dict[str, Any] = field(default_factory=dict)      # name -> its statement (or a Span): see place()
    used: set[str] = field(default_factory=set)
    parent: Scope | None = None
    inputs: set[str] = field(default_factory=set)     # names bound by `in` statements
    block: Any = None                     # the block whose body this scope runs (A.BlockDef), for dataflow errors
    current: int | None = None            # the index of the statement running in ``block``

    def child(self) -> Scope:
        """A nested scope for comprehension variables."""
        return Scope(self.namespace, parent=self)

    def get_local(self, name: str) -> tuple[bool, Any]:
        """Look up ``name`` in this scope chain; (found, value)."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                scope.used.add(name)
                value = scope.names[name]
                if value is POISON:        # its statement failed (reported): skip the reader
                    raise Poisoned(name)
                return True, value
            scope = scope.parent
        return False, None

    def root(self) -> Scope:
        """The block's own scope (comprehension scopes are its children)."""
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope

    def local_names(self) -> list[str]:
        """Names bound in this scope chain."""
        out: list[str] = []
        scope: Scope | None = self
        while scope is not None:
            out += list(scope.names)
            scope = scope.parent
        return out


def place(where: Any) -> Span | None:
    """The span of ``where``: a Span, None, or a syntax node (whose span is made when read, so it is kept unread
    until an error or a warning needs it)."""
    return where if where is None or isinstance(where, Span) else where.span
