"""Comments and blank lines: each front end finds them, and ``attach`` hangs them on the statements they belong to.

A comment on its own line belongs to the statement below it (``Trivia.before``, with the blank lines
around it); a comment that ends a statement's last line is that statement's ``trailing`` comment; a
comment inside a statement that spans several lines moves above it (the printer re-wraps the
statement). Comments after a block's last statement stay before its ``}`` (``BlockDef.end``), and
comments after the last item stay at the end of the file (``Module.end``). Text and order are kept.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archdsl.syntax import ast as A

Pos = tuple[int, int]                       # 1-based line and column
# First character and just past the last one (where a trailing comment may follow); optionally the last
# line the statement's text reaches when that is further down (a YAML block scalar below its key).
Extent = tuple[Pos, Pos] | tuple[Pos, Pos, int]


@dataclass(frozen=True, order=True)
class Comment:
    """A ``# ...`` comment found in the source, at 1-based ``line``:``column``."""

    line: int
    column: int
    text: str


def blank_lines(lines: list[str]) -> set[int]:
    """1-based numbers of the lines holding only whitespace."""
    return {i for i, line in enumerate(lines, 1) if not line or line.isspace()}     # (not line.strip(), no copy)


def _collapse(entries: list[tuple[int, str]]) -> tuple[str, ...]:
    """Entries sorted by line, at most one blank line in a row."""
    out: list[str] = []
    for _, text in sorted(entries):
        if text or not out or out[-1] != "":
            out.append(text)
    return tuple(out)


def distribute(slots: list[Extent], comments: list[Comment], blanks: set[int], region: tuple[int, int],
               ) -> tuple[list[A.Trivia], tuple[str, ...]]:
    """Trivia for each slot (sorted, non-overlapping extents) and the comments after the last one.

    ``region`` is the first and last line whose blank lines count (the slots' enclosing block or file).
    """
    before: list[list[tuple[int, str]]] = [[] for _ in slots]
    trailing: list[str | None] = [None] * len(slots)
    end: list[tuple[int, str]] = []
    starts = [s[0] for s in slots]
    for c in sorted(comments):
        i = bisect.bisect_right(starts, (c.line, c.column)) - 1
        if i >= 0 and (c.line, c.column) < slots[i][1]:
            before[i].append((c.line, c.text))                   # inside a multi-line statement: above it
        elif i >= 0 and c.line == slots[i][1][0] and trailing[i] is None:
            trailing[i] = c.text
        elif i + 1 < len(slots):
            before[i + 1].append((c.line, c.text))
        else:
            end.append((c.line, c.text))
    previous = region[0] - 1
    for i, (start, stop, *last) in enumerate(slots):
        before[i] += [(line, "") for line in range(previous + 1, start[0]) if line in blanks]
        previous = max(previous, stop[0], *last)
    end += [(line, "") for line in range(previous + 1, region[1] + 1) if line in blanks]
    trivia = [A.Trivia(_collapse(b), t) if b or t is not None else A.NO_TRIVIA
              for b, t in zip(before, trailing, strict=True)]
    return trivia, _collapse(end)


def _strip(entries: tuple[str, ...], leading: bool = False, trailing: bool = False) -> tuple[str, ...]:
    items = list(entries)
    while leading and items and items[0] == "":
        items.pop(0)
    while trailing and items and items[-1] == "":
        items.pop()
    return tuple(items)


def _inside(c: Comment, extent: Extent) -> bool:
    return extent[0] <= (c.line, c.column) < extent[1]


def yaml_comments(text: str, scalars: list[tuple[int, int, bool]]) -> list[Comment]:
    """The comments of YAML ``text``, given each scalar token's (start, end, block style) offsets.

    A ``#`` starts a comment outside scalars, at the start of a line or after whitespace; a block
    scalar (``|``, ``>``) covers the lines below its indicator, not the rest of the indicator's line.
    """
    covered = []
    for start, end, block in scalars:
        if block:
            newline = text.find("\n", start)
            start = end if newline < 0 else min(newline + 1, end)
        covered.append((start, end))
    covered.sort()
    starts = [a for a, _ in covered]
    found = []
    index = text.find("#")
    line, counted = 1, 0
    while index >= 0:
        i = bisect.bisect_right(starts, index) - 1
        inside = i >= 0 and index < covered[i][1]
        if not inside and (index == 0 or text[index - 1] in " \t\n"):
            stop = text.find("\n", index)
            stop = len(text) if stop < 0 else stop
            line, counted = line + text.count("\n", counted, index), index
            found.append(Comment(line, index - (text.rfind("\n", 0, index) + 1) + 1, text[index:stop].rstrip()))
            index = stop
        index = text.find("#", index + 1)
    return found


@dataclass(frozen=True)
class Layout:
    """Where each statement lies in the source, as a front end measured it."""

    extent: Callable[[object], Extent]                       # any item or body statement
    header: Callable[[A.BlockDef], Extent]                  # a block's header, up to its `{`
    doc: Callable[[A.BlockDef], Extent | None]              # a block's doc string


def attach(module: A.Module, comments: list[Comment], lines: list[str], layout: Layout,
           fresh: bool = False) -> A.Module:
    """``module`` with every comment and blank line of its source attached (see the module docstring).
    ``fresh``: no node of ``module`` has trivia yet (as a parser makes it)."""
    blanks = blank_lines(lines)
    if not comments and not blanks:
        return module
    extents = [layout.extent(item) for item in module.items]
    if fresh and not comments and min(blanks) > max((max(0, e[1][0], *e[2:]) for e in extents), default=0):
        return module       # only blank lines after the last item (a file's last line break): nothing to attach
    blocks = [i for i, item in enumerate(module.items) if isinstance(item, A.BlockDef)]
    starts = [extents[i][0] for i in blocks]
    inner: dict[int, list[Comment]] = {i: [] for i in blocks}
    outer = []
    for c in comments:                       # blocks do not overlap: the one starting last before c, if any
        k = bisect.bisect_right(starts, (c.line, c.column)) - 1
        if k >= 0 and _inside(c, extents[blocks[k]]):
            inner[blocks[k]].append(c)
        else:
            outer.append(c)
    trivia, end = distribute(extents, outer, blanks, (1, len(lines)))
    ordered = sorted(blanks)
    items = []
    for index, (item, ext, t) in enumerate(zip(module.items, extents, trivia, strict=True)):
        if index == 0 and t.before[:1] == ("",):
            t = dataclasses.replace(t, before=_strip(t.before, leading=True))
        if isinstance(item, A.BlockDef):
            first = bisect.bisect_left(ordered, ext[0][0])          # a blank line inside the block, if any
            if inner[index] or (first < len(ordered) and ordered[first] <= ext[1][0]) or \
                    (item.header, item.doc_trivia, item.end) != (A.NO_TRIVIA, A.NO_TRIVIA, ()) or \
                    _any_trivia(item.body):
                item = _attach_block(item, inner[index], blanks, ext, layout)
            # else no comment or blank line inside it: every part of it has no trivia, as it has already
        items.append(item if t is item.trivia or t == item.trivia else dataclasses.replace(item, trivia=t))
    return dataclasses.replace(module, items=tuple(items), end=_strip(end, trailing=True))


def _any_trivia(body: tuple) -> bool:
    """Whether a statement of ``body`` has trivia."""
    for s in body:
        if s.trivia is not A.NO_TRIVIA:
            return True
    return False


def _attach_block(block: A.BlockDef, comments: list[Comment], blanks: set[int], ext: Extent,
                  layout: Layout) -> A.BlockDef:
    doc = layout.doc(block)
    slots = [layout.header(block), *([doc] if doc else []), *(layout.extent(s) for s in block.body)]
    trivia, end = distribute(slots, comments, blanks, (ext[0][0], ext[1][0]))
    if len(trivia) > 1 and trivia[1].before[:1] == ("",):
        trivia[1] = dataclasses.replace(trivia[1], before=_strip(trivia[1].before, leading=True))
    header, rest = trivia[0], trivia[1:]
    doc_trivia = rest.pop(0) if doc else A.NO_TRIVIA
    body = tuple(s if t == s.trivia else dataclasses.replace(s, trivia=t) for s, t in zip(block.body, rest, strict=True))
    end = _strip(end, leading=not block.body and doc is None, trailing=True)
    if (header, doc_trivia, end) == (block.header, block.doc_trivia, block.end) and \
            all(a is b for a, b in zip(body, block.body, strict=True)):
        return block                        # nothing to attach (the common case in generated specs)
    return dataclasses.replace(block, body=body, header=header, doc_trivia=doc_trivia, end=end)


# -- .arch text -----------------------------------------------------------------------------------

_SKIP = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|#[^\n]*|[()\[\]{}]""")


def arch_layout(text: str, doc_spans: dict[int, Any]) -> Layout:
    """Statement extents of parsed .arch ``text``: spans, a header up to its ``{``, doc spans by block id."""
    offsets: list[int] = []                 # where each line starts: made when a block's header is first asked for

    def line_offsets() -> list[int]:
        if not offsets:
            offsets.append(0)
            for line in text.split("\n"):
                offsets.append(offsets[-1] + len(line) + 1)
        return offsets

    def pos(offset: int) -> Pos:
        line = bisect.bisect_right(offsets, offset) - 1
        return line + 1, offset - offsets[line] + 1

    def extent(node) -> Extent:
        s = A.raw_span(node)
        if type(s) is int:
            return A.unpack_positions(s)
        return (s.line, s.column), (s.end_line, s.end_column)

    def header(block: A.BlockDef) -> Extent:
        start = line_offsets()[block.span.line - 1] + block.span.column - 1
        depth = 0
        for m in _SKIP.finditer(text, start):
            ch = m.group()
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            elif ch == "{" and depth == 0:
                return extent(block)[0], pos(m.end())
        return extent(block)                                         # pragma: no cover - the parser saw a `{`

    def doc(block: A.BlockDef) -> Extent | None:
        span = doc_spans.get(id(block))
        if type(span) is int:
            return A.unpack_positions(span)
        return None if span is None else ((span.line, span.column), (span.end_line, span.end_column))

    return Layout(extent, header, doc)
