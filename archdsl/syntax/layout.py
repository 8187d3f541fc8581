"""A small Wadler-style pretty-printing engine (as in prettier): documents of text, groups and line breaks.

A ``Group`` prints on one line when it fits in the remaining width, otherwise its ``Line``s break
(each to the indentation its enclosing ``Nest``s give). A ``Fill`` breaks only the separators whose
next part would not fit (pipelines: as many stages per line as fit). ``HARD`` always breaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

Doc = Union[str, list, "Group", "Nest", "Line", "IfBreak", "Fill", "Indent"]


@dataclass(frozen=True)
class Group:
    """Flat if it fits, else broken."""

    doc: Doc


@dataclass(frozen=True)
class Nest:
    """Lines broken inside ``doc`` are indented ``by`` more columns."""

    by: int
    doc: Doc


@dataclass(frozen=True)
class Indent:
    """``doc`` starts over, broken mode, its lines indented exactly ``to`` columns (a block inside an expression)."""

    to: int
    doc: Doc


@dataclass(frozen=True)
class Line:
    """``flat`` when its group is flat, else a line break; ``hard`` lines always break."""

    flat: str = " "
    hard: bool = False


@dataclass(frozen=True)
class IfBreak:
    """``broken`` text when its group breaks, else ``flat`` (trailing commas)."""

    broken: str
    flat: str = ""


@dataclass(frozen=True)
class Fill:
    """``[part, sep, part, sep, part ...]``: each separator breaks only if the part after it does not fit."""

    parts: tuple


LINE, SOFT, HARD = Line(" "), Line(""), Line("", hard=True)
FLAT, BREAK = 0, 1


def _fits(item: tuple[int, int, Doc], rest: list, width: int) -> bool:
    """True when ``item`` (then ``rest``, up to its first line break) fits in ``width`` columns."""
    todo = [item]
    index = len(rest)
    while width >= 0:
        if not todo:
            if index == 0:
                return True
            index -= 1
            todo.append(rest[index])
            continue
        indent, mode, doc = todo.pop()
        if isinstance(doc, str):
            width -= len(doc)
        elif isinstance(doc, list):
            todo.extend((indent, mode, d) for d in reversed(doc))
        elif isinstance(doc, (Group, Nest, Indent)):
            todo.append((indent, mode, doc.doc))
        elif isinstance(doc, Line):
            if mode == BREAK or doc.hard:
                return True
            width -= len(doc.flat)
        elif isinstance(doc, IfBreak):
            width -= len(doc.broken if mode == BREAK else doc.flat)
        else:
            todo.extend((indent, mode, d) for d in reversed(doc.parts))
    return False


def render(doc: Doc, width: int, indent: int = 0) -> str:
    """``doc`` laid out in ``width`` columns; the first line starts at column ``indent``."""
    out: list[str] = []
    column = indent
    stack: list[tuple[int, int, Doc]] = [(indent, BREAK, doc)]
    while stack:
        ind, mode, d = stack.pop()
        if isinstance(d, str):
            out.append(d)
            column += len(d)
        elif isinstance(d, list):
            stack.extend((ind, mode, x) for x in reversed(d))
        elif isinstance(d, Nest):
            stack.append((ind + d.by, mode, d.doc))
        elif isinstance(d, Indent):
            stack.append((d.to, BREAK, d.doc))
        elif isinstance(d, Group):
            flat = (ind, FLAT, d.doc)
            stack.append(flat if mode == FLAT or _fits(flat, stack, width - column) else (ind, BREAK, d.doc))
        elif isinstance(d, Line):
            if mode == FLAT and not d.hard:
                out.append(d.flat)
                column += len(d.flat)
            else:
                out.append("\n" + " " * ind)
                column = ind
        elif isinstance(d, IfBreak):
            stack.append((ind, mode, d.broken if mode == BREAK else d.flat))
        else:
            _fill(d, ind, mode, stack, width - column)
    return "\n".join(line.rstrip() for line in "".join(out).split("\n"))


def _fill(d: Fill, ind: int, mode: int, stack: list, width: int) -> None:
    """Push the first part of a Fill and decide its first separator."""
    parts = d.parts
    if not parts:
        return
    first = (ind, FLAT, parts[0])
    first_mode = FLAT if mode == FLAT or _fits(first, stack if len(parts) == 1 else [], width) else BREAK
    if len(parts) >= 3:
        pair = (ind, FLAT, [parts[0], parts[1], parts[2]])
        sep_mode = FLAT if mode == FLAT or _fits(pair, stack if len(parts) == 3 else [], width) else BREAK
        stack.append((ind, mode, Fill(parts[2:])))
        stack.append((ind, sep_mode, parts[1]))
    stack.append((ind, first_mode, parts[0]))
