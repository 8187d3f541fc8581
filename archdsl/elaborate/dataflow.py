"""Dataflow facts read from a block's syntax, for checks that help instead of block.

- A name used before the statement that defines it gets its own message (and says when the uses form a cycle).
- A name no statement of its block refers to is dead code: a warning. A name that some statement refers to, but
  that one instantiation does not use (the branch a static conditional did not take), is fine.
- Independent statements are checked on after one fails: the failed statement's names are poisoned, statements
  reading them are skipped silently, and every error is reported at the end (up to ``errors.MAX_ERRORS``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from archdsl.errors import ArchError, Diagnostic, LimitError, UsageError, warn
from archdsl.syntax import ast as A

if TYPE_CHECKING:
    from archdsl.elaborate.session import Session
    from archdsl.ir.types import Span

_TEMPLATE_NAME = re.compile(r"\{[^{}]*\}")
_IDENT = re.compile(r"[A-Za-z_]\w*")


class Poisoned(Exception):  # noqa: N818 - a control-flow signal, not an error users see
    """A statement reads a name whose own statement failed: it is skipped, its error already reported."""


POISON = object()         # the value bound to the names of a statement that failed


def names_in(node: Any) -> set[str]:
    """Every name an expression or statement reads, name templates (``"layer{i+1}"``) included."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, A.Name):
            found.add(item.id)
        elif isinstance(item, A.Str):
            for part in _TEMPLATE_NAME.findall(item.value):
                found.update(_IDENT.findall(part))
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item) if f.name != "span")
    return found


def targets(stmt: A.Stmt) -> tuple[str, ...]:
    """The names a statement defines."""
    if isinstance(stmt, A.InputStmt):
        return (stmt.name,)
    if isinstance(stmt, A.Assign):
        return stmt.targets
    return ()


def referenced(block: A.BlockDef) -> set[str]:
    """Names some statement (or parameter default) of ``block`` reads."""
    return names_in(block.body) | names_in(tuple(p.default for p in block.params if p.default is not None))


# -- use before definition ----------------------------------------------------------------------------
def later_definition(block: A.BlockDef | None, current: int | None, name: str) -> tuple[int, A.Stmt] | None:
    """The statement at or after ``current`` that defines ``name`` (the current one: a self-reference)."""
    if block is None or current is None:
        return None
    for i in range(current, len(block.body)):
        if name in targets(block.body[i]):
            return i, block.body[i]
    return None


def _cycle(block: A.BlockDef, current: int, start: int, name: str) -> list[str] | None:
    """``['a', 'b', 'a']`` when statement ``start`` (defining ``name``), directly or through later statements,
    reads a name that statement ``current`` defines; else None."""
    mine = targets(block.body[current])
    defined = {t: i for i in range(current + 1, len(block.body)) for t in targets(block.body[i])}
    stack, seen = [(start, [name])], {start}
    while stack:
        i, chain = stack.pop()
        reads = names_in(block.body[i])
        hit = next((t for t in mine if t in reads), None)
        if hit is not None:
            return [hit, *chain, hit]
        for read in sorted(reads):
            j = defined.get(read)
            if j is not None and j not in seen:
                seen.add(j)
                stack.append((j, [*chain, read]))
    return None


def use_before_definition(session: Session, block: A.BlockDef, current: int, found: tuple[int, A.Stmt],
                          name: str, span: Span) -> ArchError:
    """``'b' is defined at 15:3, after this use`` (and, when the uses loop back, that dataflow cannot cycle)."""
    index, stmt = found
    where = f"{stmt.span.line}:{stmt.span.column}"
    if index == current:
        return session.error(f"'{name}' is used in its own definition; dataflow must not form a cycle", span,
                             f"a value cannot depend on itself: compute '{name}' from values defined above it")
    cycle = _cycle(block, current, index, name)
    notes = [(f"'{name}' is defined here", stmt.span)]
    if cycle is not None:
        chain = " -> ".join(f"'{n}'" for n in cycle)
        return session.error(f"'{name}' is defined at {where}, after this use; dataflow must not form a cycle",
                             span, f"these values depend on each other: {chain}; break the loop", notes=notes)
    return session.error(f"'{name}' is defined at {where}, after this use", span,
                         f"statements run in order: move the definition of '{name}' above this line", notes=notes)


# -- dead code -------------------------------------------------------------------------------------------
def report_unused(session: Session, block: A.BlockDef, unused: list[tuple[str, str, Span | None]]) -> None:
    """Of the names one instantiation of ``block`` left unused, those no statement reads are dead code: a
    warning (an input: an error). Names some statement reads are used elsewhere (the branch a static
    conditional did not take here, another instantiation) and are fine."""
    if not unused:
        return
    reads = referenced(block)
    dead = [(what, name, span) for what, name, span in unused if name not in reads]
    for what, name, span in dead:
        if what == "input":
            raise session.error(f"input '{name}' is defined but never used", span,
                                "remove it, use it in the dataflow, or start its name with '_' to keep it")
    for what, name, span in dead:
        warn(Diagnostic(f"{what} '{name}' is defined but never used", span,
                        "remove it, or start its name with '_' to keep it"), session.sources, session.builder.name)


# -- several independent errors ------------------------------------------------------------------------
def recover(session: Session, scope: Any, stmt: A.Stmt, exc: BaseException) -> bool:
    """After statement ``stmt`` raised ``exc``: True when the error is recorded (or, for a Poisoned, was already)
    and the statement's names are poisoned, so the next statement runs; False when ``exc`` is to propagate.

    Called from ``except (Poisoned, ArchError)`` around each statement of a block body (a try costs nothing
    when nothing is raised; a context manager would be entered once per statement of every block application).
    """
    if isinstance(exc, Poisoned):
        session.errors.failed += 1
        _poison(scope, stmt)
        return True
    if isinstance(exc, (LimitError, UsageError)) or not isinstance(exc, ArchError):
        return False             # a limit reached is not worth going on after; usage is not the spec's
    session.errors.failed += 1
    exc = at_call_site(session, exc)
    seen = {(d.message, str(d.span)) for e in session.errors.errors for d in e.diagnostics}
    if any((d.message, str(d.span)) not in seen for d in exc.diagnostics):   # a block applied twice: once
        session.errors.errors.append(exc)
    if session.errors.count >= session.errors.cap:
        session.errors.raise_if_any()
    _poison(scope, stmt)
    return True


def at_call_site(session: Session, exc: ArchError) -> ArchError:
    """``exc`` with each diagnostic found inside a block from another file (std/blocks.arch) moved to where the
    model's own file applies that block; the inner place stays as the first note."""
    sites, home = session.sites, session.home
    moved, changed = [], False
    for d in exc.diagnostics:
        outer = next((i for i in range(len(sites) - 1, -1, -1) if (s := sites[i]) is not None and s.file == home),
                     None)
        if d.span is None or d.span.file == home or outer is None:
            moved.append(d)
            continue
        chain = " -> ".join(session.block_stack[outer:])
        inner = (f"found inside {chain}, here", d.span)
        moved.append(dataclasses.replace(d, span=sites[outer], notes=(inner, *d.notes)))
        changed = True
    return type(exc)(moved, exc.sources) if changed else exc


def from_site(outputs: list, site: Span) -> list:
    """A block's output tensors, said to come from ``site`` when the block lives in another file (a shape
    mismatch downstream then points at the user's line, not inside std/blocks.arch)."""
    return [dataclasses.replace(t, span=site) if t.span is not None and t.span.file != site.file else t
            for t in outputs]


def _poison(scope: Any, stmt: A.Stmt) -> None:
    for t in targets(stmt):
        scope.names[t] = POISON


def failed_since(session: Session, count: int) -> None:
    """After a block body: skip the caller's statement if a statement of this body failed (already reported)."""
    if session.errors.failed > count:
        raise Poisoned
