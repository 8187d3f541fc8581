"""The one syntax tree both front ends (.arch text and YAML) produce. Every node carries a Span."""

from __future__ import annotations

import array
import dataclasses
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from archdsl.ir.types import Span, make_span

NO_SPAN = Span()


@dataclass(frozen=True, slots=True)
class Trivia:
    """Comments and blank lines around a statement: kept for ``archdsl fmt``, never compared or elaborated."""

    before: tuple[str, ...] = ()          # own-line comments ("# ...") and blank lines ("") above it, in order
    trailing: str | None = None           # the comment that ends its last line


NO_TRIVIA = Trivia()


@dataclass(frozen=True, slots=True)
class Num:
    """An int or float literal."""

    value: int | float
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )
    text: str | None = field(default=None, compare=False, repr=False)  # as the author spelled it (1e-6)


@dataclass(frozen=True, slots=True)
class Str:
    """A string literal; ``{expr}`` parts are name templates, filled in at elaboration."""

    value: str
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class Const:
    """``true``, ``false`` or ``none``."""

    value: bool | None
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class Name:
    """A reference to a parameter, dim, value, layer, block or op."""

    id: str
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class ListLit:
    """``[a, b]`` (or ``seq[a, b]`` when ``seq`` is true: an index-named container)."""

    items: tuple[Expr, ...]
    seq: bool = False
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class TupleLit:
    """``(a, b)``."""

    items: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class CompFor:
    """``for a, b in iterable`` in a comprehension."""

    targets: tuple[str, ...]
    iterable: Expr
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # `for (a, b) in ...`


@dataclass(frozen=True, slots=True)
class Comprehension:
    """``[elt for ... if cond]``; ``key`` set for ``seq{"name{i}": elt for ...}``."""

    elt: Expr
    clauses: tuple[CompFor, ...]
    cond: Expr | None = None
    key: Expr | None = None
    seq: bool = False
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class SeqNamed:
    """``seq{conv0: Conv2d(...), norm0: BatchNorm2d()}``: a container with author-chosen names."""

    entries: tuple[tuple[Expr, Expr], ...]   # (Name or Str key, value)
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class Reparam:
    """``reparam { a = ...; b = ... }``: named branches applied to one input and summed.

    ``reparam "fused" { ... }`` names the layer the branches merge into (default ``reparam_conv``).
    """

    branches: tuple[tuple[str, Expr], ...]
    merged: str | None = None
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class ReparamList:
    """``reparam[a, b]`` or ``reparam[f(i) for i in range(n)]``: index-named branches, summed."""

    items: ListLit | Comprehension
    merged: str | None = None
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class BinOp:
    """Arithmetic, comparison and boolean operators (``+ - * / // % @ ** == != < <= > >= and or``)."""

    op: str
    left: Expr
    right: Expr
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class UnaryOp:
    """``-x`` or ``not x``."""

    op: str
    operand: Expr
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class IfExpr:
    """``body if cond else orelse``; without ``else`` the value is absent (an identity layer)."""

    body: Expr
    cond: Expr
    orelse: Expr | None
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class Pipe:
    """``value |> layer``."""

    value: Expr
    layer: Expr
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class Call:
    """``f(a, b, k=v)``."""

    func: Expr
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Expr], ...]
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class Index:
    """``obj[i]``."""

    obj: Expr
    index: Expr
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


@dataclass(frozen=True, slots=True)
class Attr:
    """``ns.Name``: a block or constant from an imported spec."""

    obj: Expr
    name: str
    span: Span = field(default=NO_SPAN, compare=False)
    parens: bool = field(default=False, compare=False, repr=False)   # the author wrote ( )


Expr = (Attr | Num | Str | Const | Name | ListLit | TupleLit | Comprehension | SeqNamed | Reparam | ReparamList | BinOp | UnaryOp
        | IfExpr | Pipe | Call | Index)


@dataclass(frozen=True, slots=True)
class Rest:
    """``...`` in a tensor type: any number of dims (``[N, ..., C]``, in block inputs and outputs)."""

    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class TensorTypeExpr:
    """``[N, C, H, W]`` or ``int64[N, T]``; dims are expressions, and at most one :class:`Rest`."""

    dims: tuple[Expr | Rest, ...]
    dtype: str | None = None
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class InputStmt:
    """``in x: [N, C, H, W]``; ``in *xs: [...]`` (variadic) takes zero or more tensors, as a list."""

    name: str
    type: TensorTypeExpr
    variadic: bool = False
    where: Expr | None = None      # `in x: [N, 3, H, W] where H % 32 == 0`: what the sizes must satisfy
    span: Span = field(default=NO_SPAN, compare=False)
    trivia: Trivia = field(default=NO_TRIVIA, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class OutputStmt:
    """``out expr`` or ``out name: [..] = expr``."""

    name: str | None
    type: TensorTypeExpr | None
    value: Expr
    span: Span = field(default=NO_SPAN, compare=False)
    trivia: Trivia = field(default=NO_TRIVIA, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Assign:
    """``name = expr`` (a layer, a value or a constant), or ``a, b = expr``."""

    targets: tuple[str, ...]
    value: Expr
    let: bool = False
    span: Span = field(default=NO_SPAN, compare=False)
    trivia: Trivia = field(default=NO_TRIVIA, compare=False, repr=False)


Stmt = InputStmt | OutputStmt | Assign


@dataclass(frozen=True, slots=True)
class TypeName:
    """A parameter type as written: ``int``, ``layer``, ``list[int]``, ``tuple[int, float]``."""

    name: str
    args: tuple[TypeName, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)

    def __str__(self) -> str:
        return f"{self.name}[{', '.join(str(a) for a in self.args)}]" if self.args else self.name


@dataclass(frozen=True, slots=True)
class ParamDecl:
    """``name: type = default`` in a block header."""

    name: str
    type: TypeName
    default: Expr | None = None
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class BlockDef:
    """``block Name(params) { ... }`` or ``model Name(...) { ... }``."""

    kind: str
    name: str
    params: tuple[ParamDecl, ...]
    body: tuple[Stmt, ...]
    doc: str | None = None
    span: Span = field(default=NO_SPAN, compare=False)
    trivia: Trivia = field(default=NO_TRIVIA, compare=False, repr=False)       # above it; after its `}`
    header: Trivia = field(default=NO_TRIVIA, compare=False, repr=False)       # inside its header; after `{`
    doc_trivia: Trivia = field(default=NO_TRIVIA, compare=False, repr=False)
    end: tuple[str, ...] = field(default=(), compare=False, repr=False)        # comments before its `}`


@dataclass(frozen=True, slots=True)
class Import:
    """``import "path.arch" as alias``."""

    path: str
    alias: str | None = None
    span: Span = field(default=NO_SPAN, compare=False)
    trivia: Trivia = field(default=NO_TRIVIA, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Module:
    """One spec file: imports, top-level constants and block/model definitions, in order."""

    items: tuple[Import | Assign | BlockDef, ...]
    file: str = "<string>"
    end: tuple[str, ...] = field(default=(), compare=False, repr=False)        # comments after the last item

    @property
    def blocks(self) -> dict[str, BlockDef]:
        """Block and model definitions by name."""
        return {i.name: i for i in self.items if isinstance(i, BlockDef)}


# -- packed spans -------------------------------------------------------------------------------------------
# The .arch parser stores a node's position as one int (``pack``) instead of a Span object (a pydantic model
# with its own dict: about 260 bytes, against 40 for the int; a 100k-node spec has over 600k syntax nodes).
# Reading ``node.span`` makes the Span from the int each time, so every reader sees a Span as before; a Span
# passed to a constructor (the YAML front end, dataclasses.replace, tests) is stored and returned as it is.

_BITS = 23                                  # line and column numbers below 2**23 (sources are at most 4 MiB)
_MASK = (1 << _BITS) - 1
_FILES: list[str] = []                      # file names by number: the bits above the four positions
_FILE_NUMBERS: dict[str, int] = {}
_FILES_LOCK = threading.Lock()


def span_base(file: str) -> int:
    """The packed-span bits that name ``file`` (``pack`` adds the positions)."""
    number = _FILE_NUMBERS.get(file)
    if number is None:
        with _FILES_LOCK:
            number = _FILE_NUMBERS.get(file)
            if number is None:
                number = _FILE_NUMBERS[file] = len(_FILES)
                _FILES.append(file)
    return number << (4 * _BITS)


MAX_POSITION = _MASK                        # the largest line or column a packed span holds


def pack(base: int, line: int, column: int, end_line: int, end_column: int) -> int:
    """A packed span: ``base`` (``span_base``) with 1-based positions, each at most ``MAX_POSITION``.
    All four 0 stands for ``Span(file=file)`` (a rule that matched no text)."""
    return base | line << (3 * _BITS) | column << (2 * _BITS) | end_line << _BITS | end_column


def unpack(packed: int) -> Span:
    """The Span a packed span stands for."""
    file = _FILES[packed >> (4 * _BITS)]
    line = packed >> (3 * _BITS) & _MASK
    if not line:
        return Span(file=file)
    end_line = packed >> _BITS & _MASK
    # (a one-line span holds its line number once: numbers past 256 are objects of their own, 28 bytes each)
    return make_span(file, line, packed >> (2 * _BITS) & _MASK, line if end_line == line else end_line, packed & _MASK)


def unpack_positions(packed: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((line, column), (end_line, end_column))`` of a packed span (all 1 for a rule that matched no text)."""
    if not packed >> (3 * _BITS) & _MASK:
        return (1, 1), (1, 1)
    return ((packed >> (3 * _BITS) & _MASK, packed >> (2 * _BITS) & _MASK),
            (packed >> _BITS & _MASK, packed & _MASK))


class _SpanSlot:
    """The ``span`` attribute of a syntax node class: its slot, read through ``unpack`` when it holds an int."""

    __slots__ = ("get", "set")

    def __init__(self, slot: Any):
        self.get = slot.__get__
        self.set = slot.__set__

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return self
        value = self.get(obj)
        return unpack(value) if type(value) is int else value

    def __set__(self, obj: Any, value: Any) -> None:
        self.set(obj, value)


def raw_span(node: Any) -> Any:
    """What ``node`` stores for its span: a Span, or a packed int (for copies that keep it packed)."""
    return type(node).__dict__["span"].get(node)


def with_parens(node: Any) -> Any:
    """``dataclasses.replace(node, parens=True)``, keeping a packed span packed."""
    cls = type(node)
    known = _PARENS.get(cls)
    if known is None:
        names = tuple(f.name for f in dataclasses.fields(cls))
        known = _PARENS[cls] = (maker(cls), tuple(slot.get if isinstance(slot, _SpanSlot) else slot.__get__
                                                  for slot in (cls.__dict__[n] for n in names)), names.index("parens"))
    make, getters, parens = known
    values = [get(node) for get in getters]
    values[parens] = True
    return make(*values)


_PARENS: dict[type, Any] = {}


def maker(cls: type) -> Any:
    """A fast constructor of ``cls`` for the parser: ``maker(cls)(field values in order)``, every field given
    (the span packed or not); the same node ``cls(...)`` makes, without the frozen dataclass's per-field
    ``object.__setattr__``."""
    names = [f.name for f in dataclasses.fields(cls)]
    slots = {f"_set_{n}": (cls.__dict__[n].set if isinstance(cls.__dict__[n], _SpanSlot) else cls.__dict__[n].__set__)
             for n in names}
    params = ", ".join(names)
    body = "".join(f"    _set_{n}(_node, {n})\n" for n in names)
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls, **slots}
    # the text is built from the field names of archdsl's own syntax classes, never from spec text or a file
    exec(f"def make({params}):\n    _node = _new(_cls)\n{body}    return _node\n", scope)      # noqa: S102 - fixed text
    return scope["make"]


# A large spec's block bodies need not all stay in memory while it elaborates: a block applied once is not
# read again. ``release_body`` swaps a parsed body for the ``SourceText`` it was parsed from; reading
# ``block.body`` then parses the block's text again (positions are the same: the text is re-parsed at its own
# line and column) and keeps that body for good (a ``_Kept`` tuple, never released again).

class _Kept(tuple):
    """A block body parsed again after a release: it stays."""

    __slots__ = ()


class SourceText:
    """The .arch text a module was parsed from; it stands in the bodies of its released blocks (one object for all)."""

    __slots__ = ("text", "starts")

    def __init__(self, text: str):
        self.text = text
        self.starts: array.array | None = None      # offsets of the lines' first characters, once needed

    def offset(self, line: int, column: int) -> int:
        """Offset in the text of 1-based ``line``, ``column``."""
        starts = self.starts
        if starts is None:
            starts = array.array("q", [0])
            starts.extend(m.end() for m in re.finditer("\n", self.text))
            self.starts = starts
        return int(starts[line - 1]) + column - 1


def _reparse_body(block: Any, source: SourceText) -> tuple:
    """The body of ``block`` parsed again from ``source`` (the text its span points into): its own text is parsed
    (after as many spaces as its first line is indented) and the spans moved down to its first line, so the work
    is the block's size, not the file's."""
    from archdsl.syntax.parser import parse  # (the parser imports this module)

    span = block.span
    line, column = span.line, span.column
    start, end = source.offset(line, column), source.offset(span.end_line, span.end_column)
    items = parse(" " * (column - 1) + source.text[start:end], span.file).items
    again = _moved(items[0], line - 1) if len(items) == 1 else None
    if type(again) is not BlockDef or again.span != span or again.name != block.name:
        raise RuntimeError(f"block {block.name}: its source text changed after it was parsed")
    return again.body


_MOVES: dict[type, Any] = {}


def _moved(node: Any, lines: int) -> Any:
    """A copy of a syntax (sub)tree with every span ``lines`` lines further down (packed spans stay packed)."""
    kind = type(node)
    if kind is tuple or kind is _Kept:
        return tuple(_moved(x, lines) for x in node)
    plan = _MOVES.get(kind)
    if plan is None:
        if not dataclasses.is_dataclass(kind) or "span" not in kind.__dataclass_fields__:
            return node                             # a string, a number, None, Trivia
        slots = [(kind.__dict__[f.name], f.name == "span") for f in dataclasses.fields(kind)]
        plan = _MOVES[kind] = (maker(kind), [(s.get if isinstance(s, _SpanSlot) else s.__get__, is_span)
                                             for s, is_span in slots])
    make, getters = plan
    shift = lines << (3 * _BITS) | lines << _BITS
    values = []
    for get, is_span in getters:
        value = get(node)
        if not is_span:
            value = _moved(value, lines)
        elif type(value) is int:
            value = value + shift if value >> (3 * _BITS) & _MASK else value
        elif isinstance(value, Span):
            value = value.model_copy(update={"line": value.line + lines, "end_line": value.end_line + lines})
        values.append(value)
    return make(*values)


class _BodySlot(_SpanSlot):
    """``BlockDef.body``: its slot, parsed again from the source when it holds a ``SourceText`` marker."""

    __slots__ = ()

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return self
        value = self.get(obj)
        if type(value) is SourceText:
            value = _Kept(_reparse_body(obj, value))
            self.set(obj, value)
        return value


def release_body(block: Any, source: SourceText | None) -> bool:
    """Let ``block``'s body go until it is read again (then parsed again from ``source``, the text ``block`` was
    parsed from). Only a body the .arch parser made and not parsed again before is released."""
    slot = type(block).__dict__.get("body")
    if source is None or type(slot) is not _BodySlot or type(slot.get(block)) is not tuple:
        return False
    packed = raw_span(block)
    if type(packed) is int:
        spans_text = bool(packed >> (3 * _BITS) & _MASK)
    else:                                       # a Span where the trivia were attached (NO_SPAN: not parsed text)
        spans_text = (packed.line, packed.column) < (packed.end_line, packed.end_column)
    if not spans_text:
        return False
    slot.set(block, source)
    return True


for _cls in (Num, Str, Const, Name, ListLit, TupleLit, CompFor, Comprehension, SeqNamed, Reparam, ReparamList, BinOp,
             UnaryOp, IfExpr, Pipe, Call, Index, Attr, Rest, TensorTypeExpr, InputStmt, OutputStmt, Assign, TypeName,
             ParamDecl, BlockDef, Import):
    type.__setattr__(_cls, "span", _SpanSlot(_cls.__dict__["span"]))     # over the slot dataclass made
type.__setattr__(BlockDef, "body", _BodySlot(BlockDef.__dict__["body"]))
