"""State one elaboration shares between its parts: sources, the graph under construction, the work
budget, and where the application being expanded sits (its module path, owners and depth)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archdsl.elaborate.builder import GraphBuilder
from archdsl.errors import ArchError, Diagnostic, ElaborationError, ErrorCollector, LimitError
from archdsl.ir.types import Span

MAX_STEPS = 500_000          # comprehension items and built-in list elements, per elaboration
# Whether elaborations take their shortcuts on the commonest statements (``x |> fc``, ``fc = Linear(64)``,
# ``relu(x)``, ``in x: [N, C]``, int arithmetic): each gives exactly what the general path gives, which
# tests/elaborate/test_shortcuts.py checks by elaborating random specs both ways. Read as a session is made.
SHORTCUTS = True
SPAN_MEMO = 4096             # syntax nodes whose spans a session remembers at once (see Session.span_of)


@dataclass(unsafe_hash=True, slots=True)           # never changed once made (not frozen: made per application)
class Ctx:
    """Where an application happens: module path, owner identities, block depth."""

    path: tuple[str, ...] = ()
    owner: tuple[int | str, ...] = ()
    depth: int = 0


@dataclass
class Session:
    """Mutable state of one elaboration; every part holds the same session."""

    builder: GraphBuilder
    sources: dict[str, str]
    ctx: Ctx = Ctx()
    steps: int = 0                                   # work done so far, bounded by MAX_STEPS
    where: Span | None = None                        # the latest block application (for errors without a place)
    block_stack: list[str] = field(default_factory=list)    # names of the blocks being applied, outermost first
    errors: ErrorCollector = field(default_factory=ErrorCollector)   # independent errors, reported together
    sites: list[Span | None] = field(default_factory=list)  # where each block on block_stack is applied
    home: str | None = None                          # the model's file: errors elsewhere move to a call site here

    spans: dict[int, tuple[Any, Span]] = field(default_factory=dict)   # see span_of
    shortcuts: bool = field(default_factory=lambda: SHORTCUTS)        # see SHORTCUTS

    def span_of(self, node: Any) -> Span:
        """``node.span`` of a syntax node, the same Span object each time while the node is remembered.

        A syntax node stores its place packed and makes a Span on each read; a block applied 10k times would make
        (and its nodes keep) 10k equal Spans per statement. The memo holds the node itself, so its id is not reused
        while remembered, and at most SPAN_MEMO nodes (then starts again), so its size does not grow with the spec.
        """
        known = self.spans.get(id(node))
        if known is not None and known[0] is node:
            return known[1]
        if len(self.spans) >= SPAN_MEMO:
            self.spans.clear()
        span = node.span
        self.spans[id(node)] = (node, span)
        return span

    def error(self, message: str, span: Span | None, hint: str | None = None, cls: type[ArchError] = ElaborationError,
              notes=()) -> ArchError:
        """A located error of class ``cls`` (raise it)."""
        return cls(Diagnostic(message, span, hint, notes=tuple(notes)), self.sources)

    def spend(self, n: int, span: Span | None) -> None:
        """Count ``n`` units of evaluation work; a spec may not make more than MAX_STEPS items in all."""
        self.steps += n
        if self.steps > MAX_STEPS:
            raise self.error(f"the spec makes more than {MAX_STEPS:,} list items in all while elaborating", span,
                             "are repeat counts or nested comprehensions much larger than intended?", cls=LimitError)

    def within(self, ctx: Ctx, block: str | None = None, site: Span | None = None) -> Within:
        """The one scope manager: ``with session.within(ctx):`` applies inside ``ctx`` (and block ``block``,
        applied at ``site``)."""
        return Within(self, ctx, block, site)


class Within:
    """Enter a context (and, for a block, its name on the block stack); restore both on exit."""

    __slots__ = ("session", "ctx", "block", "site", "saved")

    def __init__(self, session: Session, ctx: Ctx, block: str | None, site: Span | None = None) -> None:
        self.session, self.ctx, self.block, self.site = session, ctx, block, site

    def __enter__(self) -> Ctx:
        self.saved = self.session.ctx
        self.session.ctx = self.ctx
        if self.block is not None:
            self.session.block_stack.append(self.block)
            self.session.sites.append(self.site)
        return self.ctx

    def __exit__(self, *exc: object) -> None:
        self.session.ctx = self.saved
        if self.block is not None:
            self.session.block_stack.pop()
            self.session.sites.pop()
