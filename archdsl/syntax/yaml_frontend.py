"""The YAML front end: the constructs of .arch in a structured form, for tools that generate specs.

A document is a mapping of sections, read in order (or a list of such mappings when a section has to
repeat to keep the order of items)::

    imports: [std/blocks.arch, {path: other.arch, as: o}]
    let: {settings: "[(1, 16, 1, 1), (6, 24, 2, 2)]"}
    blocks:                                   # `models:` has the same shape
      BasicBlock:
        doc: A residual block.
        params: {planes: int, stride: "int = 1"}
        body:
          - in: {x: "[N, C, H, W]"}           # several inputs may share one `in:`
          - conv1: "Conv2d(planes, 3, stride=stride, padding=1, bias=false)"
          - "a, b": "split(x, 2)"             # several targets
          - let: {k: "planes // 4"}
          - out: "relu(x |> conv1)"           # or {name: y, type: "[N, C, H, W]", value: "..."}

Expressions, tensor types and parameter types stay strings, parsed by the .arch grammar; a scalar is
always read as its source text (``3``, ``true`` and ``[N, C]`` alike). Only PyYAML's composer runs
(safe loader, no constructor): tags other than the standard ones are refused, aliases are expanded
under a size budget, and every error is a ParseError or LimitError with the YAML line and column.
"""

from __future__ import annotations

import re

import yaml
from yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode, SequenceNode

from archdsl.errors import ArchError, Diagnostic, LimitError, ParseError
from archdsl.ir.types import Span
from archdsl.syntax import ast as A
from archdsl.syntax.parser import MAX_SOURCE_BYTES, parse_expression, parse_tensor_type, parse_type_name
from archdsl.syntax.trivia import Extent, Layout, Pos, attach, yaml_comments

MAX_EXPANDED = MAX_SOURCE_BYTES  # nodes + scalar characters visited, aliases counted at every use
STATEMENT_WORDS = frozenset({"in", "out", "let"})         # never assignment targets
EXPRESSION_WORDS = frozenset({"not", "true", "false", "none", "seq", "reparam"})   # `out true = 1` is `out <expr>`
SECTIONS = ("imports", "let", "blocks", "models")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_STD + t for t in ("str", "int", "float", "bool", "null", "timestamp", "value"))
_NODE_TAG: dict[type[Node], str] = {MappingNode: _STD + "map", SequenceNode: _STD + "seq"}
_KIND = {MappingNode: "a mapping", SequenceNode: "a list", ScalarNode: "a string"}

Entry = tuple[str, ScalarNode, Node]


def parse_yaml(text: str, file: str = "<string>") -> A.Module:
    """Parse a YAML spec into the same Module the .arch parser produces."""
    if len(text.encode("utf-8", errors="replace")) > MAX_SOURCE_BYTES:
        raise LimitError(Diagnostic(f"spec file is larger than {MAX_SOURCE_BYTES // 1024 // 1024} MiB",
                                    Span(file=file)))
    reader = _Reader(text, file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        module = A.Module(items=tuple(reader.document(root)), file=file)
        scalars = [(t.start_mark.index, t.end_mark.index, t.style in ("|", ">"))
                   for t in yaml.scan(text, Loader=yaml.SafeLoader) if isinstance(t, yaml.ScalarToken)] \
            if "#" in text else []
        return attach(module, yaml_comments(text, scalars), reader.lines, reader.layout())
    except yaml.YAMLError as exc:
        raise reader.yaml_error(exc) from None
    except RecursionError:
        raise LimitError(Diagnostic("the YAML document nests too deeply", Span(file=file)), {file: text}) from None



WHERE = re.compile(r"\s+where\s")


def split_where(text: str) -> tuple[int, int]:
    """(end of the tensor type, start of its ``where`` condition or 0) in an input's type string.

    The condition starts after the first ``where`` that follows the type's closing bracket: a size may be a
    symbol spelled ``where`` (``[N, where * 2]``), and the type is everything when no condition follows.
    """
    depth, close = 0, -1
    for i, ch in enumerate(text):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "]" and depth == 0:
            close = i
            break
    found = WHERE.match(text, close + 1) if close >= 0 else None
    return (close + 1, found.end()) if found else (len(text), 0)

class _Reader:
    """Walks composed YAML nodes (never constructed Python objects) into syntax-tree nodes."""

    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        self.lines = text.split("\n")
        self.budget = MAX_EXPANDED
        self.parsed: dict[tuple, object] = {}
        self.extents: dict[int, Extent] = {}     # id(item or statement) -> where it lies, for comments
        self.headers: dict[int, Extent] = {}     # id(block) -> its key
        self.docs: dict[int, Extent] = {}        # id(block) -> its doc entry

    # -- where statements lie (comments attach to them) ---------------------------------------
    def layout(self) -> Layout:
        """Extents of the items and statements read, for ``trivia.attach``."""
        return Layout(lambda node: self.extents[id(node)], lambda b: self.headers[id(b)],
                      lambda b: self.docs.get(id(b)))

    def _pos(self, mark) -> Pos:
        return mark.line + 1, mark.column + 1

    def end_of(self, node: Node) -> Pos:
        """Just past the last character of ``node``'s text (a block scalar's last non-blank line)."""
        if isinstance(node, ScalarNode) and node.style in ("|", ">"):
            line = node.end_mark.line - (node.end_mark.column == 0)
            while line > node.start_mark.line and not self.lines[line].strip():
                line -= 1
            return line + 1, len(self.lines[line].rstrip()) + 1
        if not isinstance(node, CollectionNode) or node.flow_style or not node.value:
            return self._pos(node.end_mark)
        last = node.value[-1]
        return max(self.end_of(last[0]), self.end_of(last[1])) if isinstance(last, tuple) else self.end_of(last)

    def comments_below(self, last: int, key_node: ScalarNode) -> int:
        """``last``, moved down over the comment lines below it indented past ``key_node`` (they are inside it)."""
        line = last
        while line < len(self.lines):
            text = self.lines[line]
            if text.strip() and not (text.lstrip().startswith("#")
                                     and len(text) - len(text.lstrip()) > key_node.start_mark.column):
                break
            line += 1
        while line > last and not self.lines[line - 1].strip():
            line -= 1
        return line

    def entry_extent(self, start: Node, key_node: ScalarNode, value: Node | None) -> Extent:
        """From ``start`` to the end of ``value``; a value on the lines below its key ends, for comments, at the key."""
        if value is None or self.is_null(value):
            return self._pos(start.start_mark), self._pos(key_node.end_mark)
        below = (isinstance(value, ScalarNode) and value.style in ("|", ">")) or \
            (isinstance(value, CollectionNode) and not value.flow_style and bool(value.value))
        if below:
            line, column = self._pos(key_node.end_mark)
            return self._pos(start.start_mark), (line, column + 1), self.end_of(value)[0]
        return self._pos(start.start_mark), self.end_of(value)

    # -- errors and positions -----------------------------------------------------------------
    def span(self, node: Node) -> Span:
        """The span of a node (1-based lines and columns)."""
        start, end = node.start_mark, node.end_mark
        return Span(file=self.file, line=start.line + 1, column=start.column + 1,
                    end_line=end.line + 1, end_column=end.column + 1)

    def error(self, node: Node | None, message: str, hint: str | None = None) -> ParseError:
        """A ParseError pointing at ``node``."""
        span = self.span(node) if node is not None else Span(file=self.file)
        return ParseError(Diagnostic(message, span, hint), {self.file: self.text})

    def yaml_error(self, exc: yaml.YAMLError) -> ParseError:
        """PyYAML's own syntax errors, with their position."""
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
        else:  # a ReaderError: a character YAML does not allow
            pos = getattr(exc, "position", 0)
            line = self.text.count("\n", 0, pos) + 1
            column = pos - self.text.rfind("\n", 0, pos)
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "invalid YAML"
        span = Span(file=self.file, line=line, column=column, end_line=line, end_column=column + 1)
        return ParseError(Diagnostic(f"invalid YAML: {problem}", span), {self.file: self.text})

    def content_start(self, node: ScalarNode, offset: int = 0) -> tuple[int, int]:
        """Line and column of character ``offset`` of a scalar's value (exact for one-line scalars)."""
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if node.style in ('"', "'"):
            column += 1
        elif node.style in ("|", ">"):
            line += 1
            while line <= len(self.lines) and not self.lines[line - 1].strip():
                line += 1
            body = self.lines[line - 1] if line <= len(self.lines) else ""
            column = len(body) - len(body.lstrip(" ")) + 1
        before = node.value[:offset]
        if "\n" in before:
            return line + before.count("\n"), len(before) - before.rfind("\n")
        return line, column + offset

    # -- typed access to nodes ------------------------------------------------------------------
    def visit(self, node: Node, kind: type, what: str) -> None:
        """Check a node's kind and tag, and charge it to the expansion budget."""
        tag = node.tag
        if tag == _STD + "merge":
            raise self.error(node, "YAML merge keys ('<<') are not supported in specs")
        if tag not in (_SCALAR_TAGS if isinstance(node, ScalarNode) else {_NODE_TAG[type(node)]}):
            raise self.error(node, f"the YAML tag '{tag.replace(_STD, '!!')}' is not allowed in a spec",
                             "specs are data: only plain strings, lists and mappings")
        if not isinstance(node, kind):
            raise self.error(node, f"{what} must be {_KIND[kind]}, not {_KIND[type(node)]}")
        self.budget -= 1 + (len(node.value) if kind is ScalarNode else 0)
        if self.budget < 0:
            raise LimitError(Diagnostic(f"the YAML expands to more than {MAX_EXPANDED} nodes and characters",
                                        self.span(node), "are aliases (*name) used many times?"),
                             {self.file: self.text})

    def is_null(self, node: Node | None) -> bool:
        """True for a missing value or an explicit YAML null (``key:`` with nothing after it)."""
        return node is None or (isinstance(node, ScalarNode) and node.tag == _STD + "null")

    def scalar(self, node: Node, what: str) -> str:
        """The source text of a scalar."""
        self.visit(node, ScalarNode, what)
        return node.value

    def sequence(self, node: Node | None, what: str) -> list[Node]:
        """The items of a list; a null value is an empty list."""
        if node is None or self.is_null(node):
            return []
        self.visit(node, SequenceNode, what)
        return list(node.value)

    def mapping(self, node: Node | None, what: str) -> list[Entry]:
        """``(key, key node, value node)`` in order; keys are unique strings; null is empty."""
        if node is None or self.is_null(node):
            return []
        self.visit(node, MappingNode, what)
        seen: dict[str, Node] = {}
        entries = []
        for key_node, value in node.value:
            key = self.scalar(key_node, f"a key in {what}")
            if key in seen:
                raise self.error(key_node, f"duplicate key '{key}' in {what}",
                                 f"the first is at line {seen[key].start_mark.line + 1}")
            seen[key] = key_node
            entries.append((key, key_node, value))
        return entries

    def fields(self, node: Node, what: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        """A mapping with a fixed set of keys, as ``{key: value node}``."""
        found = {}
        for key, key_node, value in self.mapping(node, what):
            if key not in allowed:
                raise self.error(key_node, f"unknown key '{key}' in {what}", f"expected {', '.join(allowed)}")
            found[key] = value
        for key in required:
            if key not in found:
                raise self.error(node, f"{what} needs a '{key}' key")
        return found

    def name(self, node: ScalarNode, text: str, what: str, reserved: frozenset[str] = frozenset()) -> str:
        """``text`` checked to be a name the .arch grammar accepts in this position."""
        if not _NAME.fullmatch(text) or text in reserved:
            reason = "a reserved word here" if text in reserved else "not a valid name"
            raise self.error(node, f"{what} '{text}' is {reason}")
        return text

    # -- parsed strings -------------------------------------------------------------------------
    def _fragment(self, parse, node: Node, text: str, offset: int = 0):
        """Parse a string from ``node`` once, however many aliases refer to it (trees are immutable)."""
        if not isinstance(node, ScalarNode):       # callers read ``text`` with scalar(), which checks this
            raise self.error(node, "expected a string")
        key = (id(node), parse, offset)
        if key not in self.parsed:
            self.parsed[key] = self._parse_at(parse, node, text, offset)
        return self.parsed[key]

    def _parse_at(self, parse, node: ScalarNode, text: str, offset: int):
        line, column = self.content_start(node, offset)
        if node.style == "|" and offset == 0:       # keep the block's indentation: exact columns
            text = "\n".join(" " * (column - 1) + part for part in text.split("\n"))
            column = 1
        try:
            return parse(text, self.file, line, column)
        except ArchError as exc:
            raise type(exc)(exc.diagnostics, {self.file: self.text}) from None

    def expr(self, node: Node, what: str = "an expression") -> A.Expr:
        """An expression string."""
        if self.is_null(node) or (isinstance(node, ScalarNode) and not node.value.strip()):
            raise self.error(node, f"{what} is missing", "write `none` for the none constant")
        return self._fragment(parse_expression, node, self.scalar(node, what))

    def tensor_type(self, node: Node) -> A.TensorTypeExpr:
        """A tensor type string such as ``[N, C, H, W]`` or ``int64[B, T]`` (before any ``where``)."""
        text = self.scalar(node, "a tensor type")
        return self._fragment(parse_tensor_type, node, text[:split_where(text)[0]])

    def where(self, node: Node) -> A.Expr | None:
        """The condition after ``where`` in an input's type string (``[N, 3, H, W] where H % 32 == 0``)."""
        text = self.scalar(node, "a tensor type")
        end, start = split_where(text)
        return self._fragment(parse_expression, node, text[start:], start) if start else None

    def param(self, name: str, key_node: ScalarNode, node: Node) -> A.ParamDecl:
        """``name: "type"`` or ``name: "type = default"``."""
        text = self.scalar(node, f"the type of parameter '{name}'")
        type_text, eq, default = text.partition("=")
        type_name = self._fragment(parse_type_name, node, type_text)
        value = self._fragment(parse_expression, node, default, len(type_text) + 1) if eq else None
        return A.ParamDecl(name=self.name(key_node, name, "parameter"), type=type_name, default=value,
                           span=self.span(key_node))

    # -- sections -------------------------------------------------------------------------------
    def document(self, root: Node | None) -> list[A.Import | A.Assign | A.BlockDef]:
        """Every item of the document, in order."""
        if root is None or self.is_null(root):
            return []
        parts = self.sequence(root, "the document") if isinstance(root, SequenceNode) else [root]
        items: list[A.Import | A.Assign | A.BlockDef] = []
        for part in parts:
            if not isinstance(part, MappingNode):
                raise self.error(part, "a YAML spec is a mapping of sections",
                                 f"the sections are {', '.join(SECTIONS)}")
            for key, key_node, value in self.mapping(part, "the document"):
                items += self.section(key, key_node, value)
        return items

    def section(self, key: str, key_node: ScalarNode, node: Node) -> list[A.Import | A.Assign | A.BlockDef]:
        """The items of one section."""
        if key == "imports":
            return [self.import_(item) for item in self.sequence(node, "imports")]
        if key == "let":
            return [self.assign(k, kn, v, let=True, start=kn) for k, kn, v in self.mapping(node, "let")]
        if key in ("blocks", "models"):
            return [self.block(key[:-1], k, kn, v) for k, kn, v in self.mapping(node, key)]
        raise self.error(key_node, f"unknown section '{key}'", f"the sections are {', '.join(SECTIONS)}")

    def import_(self, node: Node) -> A.Import:
        """``path`` or ``{path: path, as: alias}``."""
        if isinstance(node, ScalarNode):
            item = A.Import(path=self.scalar(node, "an import"), span=self.span(node))
        else:
            found = self.fields(node, "an import", ("path", "as"), required=("path",))
            alias = found.get("as")
            item = A.Import(path=self.scalar(found["path"], "an import path"),
                            alias=self.name(alias, self.scalar(alias, "an import alias"), "alias") if alias else None,
                            span=self.span(node))
        self.extents[id(item)] = self._pos(node.start_mark), self.end_of(node)
        return item

    def block(self, kind: str, name: str, key_node: ScalarNode, node: Node) -> A.BlockDef:
        """``Name: {doc, params, body}``."""
        what = f"{kind} '{self.name(key_node, name, kind)}'"
        found = self.fields(node, what, ("doc", "params", "body")) if not self.is_null(node) else {}
        doc = None if self.is_null(found.get("doc")) else self.scalar(found["doc"], "a doc string")
        params = tuple(self.param(*entry) for entry in self.mapping(found.get("params"), f"the params of {what}"))
        body = tuple(s for item in self.sequence(found.get("body"), f"the body of {what}") for s in self.stmt(item))
        block = A.BlockDef(kind=kind, name=name, params=params, body=body, doc=doc, span=self.span(key_node))
        self.headers[id(block)] = self._pos(key_node.start_mark), self._pos(key_node.end_mark)
        keys = {k.value: (k, v) for k, v in node.value} if found else {}
        if doc is not None:
            doc_key, doc_node = keys["doc"]
            self.docs[id(block)] = self.entry_extent(doc_key, doc_key, doc_node)
        ends = [self.end_of(key_node), *(self.end_of(v) for _, v in keys.values()),
                *(self.extents[id(s)][-1] for s in body)]
        last = self.comments_below(max(e if isinstance(e, tuple) else (e, 0) for e in ends)[0], key_node)
        self.extents[id(block)] = self._pos(key_node.start_mark), (last, 1 << 30)
        return block

    # -- statements -----------------------------------------------------------------------------
    def stmt(self, node: Node) -> list[A.InputStmt | A.OutputStmt | A.Assign]:
        """One body item: a one-key mapping (``in``, ``out``, ``let`` or the assigned names)."""
        entries = self.mapping(node, "a statement")
        if len(entries) != 1:
            raise self.error(node, "a statement is a mapping with exactly one key",
                             "write `- name: expr`, `- in: {x: '[N, C]'}`, `- let: {k: expr}` or `- out: expr`")
        key, key_node, value = entries[0]
        stmts: list[A.InputStmt | A.OutputStmt | A.Assign]
        if key == "in":
            stmts = [A.InputStmt(name=self.name(kn, k.removeprefix("*"), "input"), type=self.tensor_type(v),
                                 variadic=k.startswith("*"), where=self.where(v), span=self.span(kn))  # "*xs"
                     for k, kn, v in self.mapping(value, "in")]
        elif key == "let":
            stmts = [self.assign(k, kn, v, let=True) for k, kn, v in self.mapping(value, "let")]
        elif key == "out":
            stmts = [self.output(value, key_node)]
        else:
            stmts = [self.assign(key, key_node, value)]
        for s in stmts:
            self.extents[id(s)] = self.entry_extent(node, key_node, value)
        return stmts

    def assign(self, key: str, key_node: ScalarNode, node: Node, let: bool = False,
               start: Node | None = None) -> A.Assign:
        """``name: expr`` or ``"a, b": expr`` (``start``: a top-level ``let`` entry, whose extent is recorded)."""
        reserved = frozenset() if let else STATEMENT_WORDS
        targets = tuple(self.name(key_node, t.strip(), "target", reserved) for t in key.split(","))
        if let and len(targets) != 1:
            raise self.error(key_node, "`let` binds one name")
        item = A.Assign(targets=targets, value=self.expr(node), let=let, span=self.span(key_node))
        if start is not None:
            self.extents[id(item)] = self.entry_extent(start, key_node, node)
        return item

    def output(self, node: Node, key_node: ScalarNode) -> A.OutputStmt:
        """``out: expr`` or ``out: {name: y, type: "[N, C]", value: expr}``."""
        if not isinstance(node, MappingNode):
            return A.OutputStmt(name=None, type=None, value=self.expr(node, "the output"), span=self.span(key_node))
        found = self.fields(node, "a named output", ("name", "type", "value"), required=("name", "value"))
        name = self.name(found["name"], self.scalar(found["name"], "an output name"), "output", EXPRESSION_WORDS)
        type_ = self.tensor_type(found["type"]) if "type" in found else None
        return A.OutputStmt(name=name, type=type_, value=self.expr(found["value"], "the output"),
                            span=self.span(key_node))
