"""The .arch text front end: lark LALR parse, then a Transformer to the syntax tree in ``ast``."""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from typing import Any

import lark
from lark import Token, Transformer, v_args

from archdsl.errors import ArchError, Diagnostic, LimitError, ParseError
from archdsl.gcpause import gc_paused
from archdsl.ir.types import Span
from archdsl.syntax import ast as A
from archdsl.syntax import fastparse, tables
from archdsl.syntax.parse_errors import diagnose, recover, resume_after
from archdsl.syntax.parse_errors import offset_span as _offset_span
from archdsl.syntax.parse_errors import open_brackets as _open_brackets
from archdsl.syntax.trivia import Comment, arch_layout, attach

MAX_SOURCE_BYTES = 4 * 1024 * 1024
MAX_NESTING = 200
MAX_CHAIN = 450     # estimated expression tree depth; the parser's own recursion gives out near 490

# The grammar ignores comments; the lexer still reports each one here, for `archdsl fmt`.
_seen = threading.local()


def _comment(token: Token) -> Token:
    found = getattr(_seen, "comments", None)
    if found is not None:
        found.append(Comment(token.line or 1, token.column or 1, str(token).rstrip()))
    return token


@functools.cache
def _parser() -> lark.Lark:
    return tables.parser(_comment)       # the shipped LALR tables when they match the grammar, else built


def _span(meta_or_tok, file: str) -> Span:
    if isinstance(meta_or_tok, Token):
        return Span(file=file, line=meta_or_tok.line or 1, column=meta_or_tok.column or 1,
                    end_line=meta_or_tok.end_line or 1, end_column=meta_or_tok.end_column or 1)
    if getattr(meta_or_tok, "empty", True):
        return Span(file=file)
    return Span(file=file, line=meta_or_tok.line, column=meta_or_tok.column,
                end_line=meta_or_tok.end_line, end_column=meta_or_tok.end_column)


def unquote(text: str) -> str:
    """The value of a quoted string literal (only simple escapes; never evaluated as code)."""
    body = text[1:-1]
    if "\\" not in body:                  # no escape (the commonest): nothing to replace
        return body
    return _ESCAPE.sub(_unescape, body)


_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "t": "\t"}


def _unescape(m: re.Match) -> str:
    return _ESCAPES.get(m[1], m[1])


@v_args(meta=True)
class _ToAst(Transformer):
    """Turns lark's parse tree into ``ast`` nodes, one method per grammar alias."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file
        self.doc_spans: dict[int, Span] = {}      # id(BlockDef) -> span of its doc string

    def s(self, meta) -> Span:
        return _span(meta, self.file)

    # -- top level ----------------------------------------------------------------------------
    def start(self, meta, items):
        return A.Module(items=tuple(items), file=self.file)

    def import_stmt(self, meta, c):
        return A.Import(path=unquote(c[0]), alias=str(c[1]) if c[1] else None, span=self.s(meta))

    def kind(self, meta, c):
        word = str(c[0])
        if word not in ("block", "model"):
            raise ParseError(Diagnostic(f"unexpected '{word}'; expected 'block', 'model', 'import' or 'let'",
                                        _span(c[0], self.file), "a spec file holds imports, lets, blocks and models"))
        return word

    def block_def(self, meta, c):
        kind, name, *rest = c
        params = tuple(p for p in rest if isinstance(p, A.ParamDecl))
        doc = next((d for d in rest if isinstance(d, A.Str)), None)
        body = tuple(x for x in rest if isinstance(x, (A.InputStmt, A.OutputStmt, A.Assign)))
        block = A.BlockDef(kind=kind, name=str(name), params=params, body=body,
                           doc=doc.value if doc else None, span=self.s(meta))
        if doc is not None:
            self.doc_spans[id(block)] = doc.span
        return block

    def doc(self, meta, c):
        return A.Str(unquote(c[0]), span=self.s(meta))

    def param(self, meta, c):
        return A.ParamDecl(name=str(c[0]), type=c[1], default=c[2], span=_span(c[0], self.file))

    def type_name(self, meta, c):
        base, *args = [x for x in c if x is not None]
        return A.TypeName(str(base), tuple(args), span=self.s(meta))

    # -- statements ---------------------------------------------------------------------------
    def in_stmt(self, meta, c):
        return A.InputStmt(name=str(c[1]), type=c[2], variadic=c[0] is not None, where=c[3], span=self.s(meta))

    def out_anon(self, meta, c):
        return A.OutputStmt(name=None, type=None, value=c[0], span=self.s(meta))

    def out_named(self, meta, c):
        return A.OutputStmt(name=str(c[0]), type=c[1], value=c[2], span=self.s(meta))

    def assign(self, meta, c):
        return A.Assign(targets=tuple(str(t) for t in c[:-1]), value=c[-1], span=self.s(meta))

    def let_stmt(self, meta, c):
        return A.Assign(targets=(str(c[0]),), value=c[1], let=True, span=self.s(meta))

    def rest_dim(self, meta, c):
        return A.Rest(span=_span(c[0], self.file))

    def tensor_type(self, meta, c):
        dtype = str(c[0]) if c[0] is not None else None
        dims = tuple(x for x in c[1:] if x is not None)
        return A.TensorTypeExpr(dims=dims, dtype=dtype, span=self.s(meta))

    # -- expressions ----------------------------------------------------------------------------
    def if_else(self, meta, c):
        return A.IfExpr(body=c[0], cond=c[1], orelse=c[2], span=self.s(meta))

    def if_absent(self, meta, c):
        return A.IfExpr(body=c[0], cond=c[1], orelse=None, span=self.s(meta))

    def or_op(self, meta, c):
        return A.BinOp("or", c[0], c[1], span=self.s(meta))

    def and_op(self, meta, c):
        return A.BinOp("and", c[0], c[1], span=self.s(meta))

    def not_op(self, meta, c):
        return A.UnaryOp("not", c[0], span=self.s(meta))

    def compare(self, meta, c):
        return A.BinOp(str(c[1]), c[0], c[2], span=self.s(meta))

    def binop(self, meta, c):
        return A.BinOp(str(c[1]), c[0], c[2], span=self.s(meta))

    def neg(self, meta, c):
        return A.UnaryOp("-", c[0], span=self.s(meta))

    def pow(self, meta, c):
        return A.BinOp("**", c[0], c[2], span=self.s(meta))

    def pipe(self, meta, c):
        return A.Pipe(c[0], c[1], span=self.s(meta))

    def call(self, meta, c):
        func, args = c
        pos = tuple(a for a in (args or []) if not isinstance(a, tuple))
        kws = tuple(a for a in (args or []) if isinstance(a, tuple))
        return A.Call(func=func, args=pos, kwargs=kws, span=self.s(meta))

    def index(self, meta, c):
        return A.Index(c[0], c[1], span=self.s(meta))

    def attr(self, meta, c):
        return A.Attr(c[0], str(c[1]), span=self.s(meta))

    def arguments(self, meta, c):
        return list(c)

    def pos_arg(self, meta, c):
        return c[0]

    def kw_arg(self, meta, c):
        return (str(c[0]), c[1])

    def number(self, meta, c):
        text = str(c[0])
        value = float(text) if any(ch in text for ch in ".eE") else int(text)
        return A.Num(value, span=self.s(meta), text=text)

    def string(self, meta, c):
        return A.Str(unquote(c[0]), span=self.s(meta))

    def true(self, meta, c):
        return A.Const(True, span=self.s(meta))

    def false(self, meta, c):
        return A.Const(False, span=self.s(meta))

    def none(self, meta, c):
        return A.Const(None, span=self.s(meta))

    def name(self, meta, c):
        return A.Name(str(c[0]), span=self.s(meta))

    def paren(self, meta, c):
        return dataclasses.replace(c[0], parens=True)

    def tuple_lit(self, meta, c):
        return A.TupleLit(tuple(x for x in c if x is not None), span=self.s(meta))

    def list_lit(self, meta, c):
        return A.ListLit(tuple(x for x in c if x is not None), span=self.s(meta))

    def seq_list(self, meta, c):
        return A.ListLit(tuple(x for x in c if x is not None), seq=True, span=self.s(meta))

    def _comp(self, meta, c, seq: bool, key=None):
        elt, *rest = c
        clauses = tuple(x for x in rest if isinstance(x, A.CompFor))
        cond = next((x for x in rest if x is not None and not isinstance(x, A.CompFor)), None)
        return A.Comprehension(elt=elt, clauses=clauses, cond=cond, key=key, seq=seq, span=self.s(meta))

    def list_comp(self, meta, c):
        return self._comp(meta, c, seq=False)

    def seq_comp(self, meta, c):
        return self._comp(meta, c, seq=True)

    def seq_named(self, meta, c):
        return A.SeqNamed(tuple(x for x in c if x is not None), span=self.s(meta))

    def seq_named_comp(self, meta, c):
        (key, value), *rest = c
        return self._comp(meta, [value, *rest], seq=True, key=key)

    def entry(self, meta, c):
        tok = c[0]
        key = A.Str(unquote(tok), span=_span(tok, self.file)) if tok.type == "STRING" else \
            A.Name(str(tok), span=_span(tok, self.file))
        return (key, c[1])

    @staticmethod
    def _merged(c: list) -> tuple[str | None, list]:
        """The optional merged-layer name (``reparam "fused" {...}``) and the rest of the children."""
        if c and isinstance(c[0], Token) and c[0].type == "STRING":
            return unquote(c[0]), c[1:]
        return None, c[1:] if c and c[0] is None else c          # the [STRING] placeholder when absent

    def reparam(self, meta, c):
        merged, rest = self._merged(c)
        return A.Reparam(tuple(rest), merged, span=self.s(meta))

    def reparam_list(self, meta, c):
        merged, rest = self._merged(c)
        items = A.ListLit(tuple(x for x in rest if x is not None), span=self.s(meta))
        return A.ReparamList(items, merged, span=self.s(meta))

    def reparam_comp(self, meta, c):
        merged, rest = self._merged(c)
        return A.ReparamList(self._comp(meta, rest, seq=False), merged, span=self.s(meta))

    def branch(self, meta, c):
        return (str(c[0]), c[1])

    def comp_for(self, meta, c):
        targets, parens = c[0] if isinstance(c[0], list) else (c[0], False)
        return A.CompFor(targets=targets, iterable=c[1], span=self.s(meta), parens=parens)

    def comp_if(self, meta, c):
        return c[0]

    def targets(self, meta, c):
        return tuple(str(t) for t in c)

    def paren_targets(self, meta, c):
        return [tuple(str(t) for t in c), True]


# constructors that skip the frozen dataclass __init__ (every field in order; see ast.maker)
_Import = A.maker(A.Import)
_BlockDef = A.maker(A.BlockDef)
_Str = A.maker(A.Str)
_ParamDecl = A.maker(A.ParamDecl)
_TypeName = A.maker(A.TypeName)
_InputStmt = A.maker(A.InputStmt)
_OutputStmt = A.maker(A.OutputStmt)
_Assign = A.maker(A.Assign)
_Rest = A.maker(A.Rest)
_TensorTypeExpr = A.maker(A.TensorTypeExpr)
_IfExpr = A.maker(A.IfExpr)
_BinOp = A.maker(A.BinOp)
_UnaryOp = A.maker(A.UnaryOp)
_Pipe = A.maker(A.Pipe)
_Call = A.maker(A.Call)
_Index = A.maker(A.Index)
_Attr = A.maker(A.Attr)
_Num = A.maker(A.Num)
_Const = A.maker(A.Const)
_Name = A.maker(A.Name)


def _token_span(here: int, text: str) -> Any:
    """The packed span of the token ``text`` that starts where the rule at ``here`` starts (one line)."""
    return here >> 46 << 46 | (here >> 69 & A.MAX_POSITION) << 23 | ((here >> 46 & A.MAX_POSITION) + len(text))


class _LeanToAst:
    """The ``_ToAst`` methods for the lean parser (``fastparse``): a method gets the rule's packed span (``here``;
    None for the rules in ``SPANLESS``) and its children, tokens among them as plain strings. Its nodes are
    those ``_ToAst`` makes from lark's tree, spans stored packed (``ast.pack``)."""

    SPANLESS = frozenset({"arguments", "pos_arg", "kw_arg", "branch", "comp_if", "targets", "paren_targets"})
    # the nodes the lean parser makes at once from their fields (see fastparse.parse)
    make_name, make_pipe, make_binop, make_call = (
        staticmethod(_Name), staticmethod(_Pipe), staticmethod(_BinOp), staticmethod(_Call))
    make_assign, make_in, make_out, make_tensor_type, make_type_name = (
        staticmethod(_Assign), staticmethod(_InputStmt), staticmethod(_OutputStmt), staticmethod(_TensorTypeExpr),
        staticmethod(_TypeName))

    def __init__(self, file: str):
        self.file = file
        self.base = A.span_base(file)
        self.doc_spans: dict[int, Any] = {}       # id(BlockDef) -> span of its doc string (packed)

    def start(self, here: Any, c: list) -> A.Module:
        return A.Module(items=tuple(c), file=self.file)

    def import_stmt(self, here: Any, c: list) -> A.Import:
        return _Import(unquote(c[0]), c[1] if c[1] else None, here, A.NO_TRIVIA)

    def kind(self, here: Any, c: list) -> str:
        if c[0] not in ("block", "model"):
            raise fastparse.Unsupported("not a block or model")       # lark reports it
        return c[0]

    def block_def(self, here: Any, c: list) -> A.BlockDef:
        """``c``: the kind, the name, the parameters (a list), the doc string's token and its packed span (None,
        None without one), the statements (a list)."""
        kind, name, params, doc, doc_span, body = c
        block = _BlockDef(kind, name, tuple(params), tuple(body), None if doc is None else unquote(doc), here,
                          A.NO_TRIVIA, A.NO_TRIVIA, A.NO_TRIVIA, ())
        if doc is not None:
            self.doc_spans[id(block)] = doc_span      # packed (trivia.arch_layout reads either)
        return block

    def param(self, here: Any, c: list) -> A.ParamDecl:
        return _ParamDecl(c[0], c[1], c[2], _token_span(here, c[0]))

    def out_named(self, here: Any, c: list) -> A.OutputStmt:
        return _OutputStmt(c[0], c[1], c[2], here, A.NO_TRIVIA)

    def let_stmt(self, here: Any, c: list) -> A.Assign:
        return _Assign((c[0],), c[1], True, here, A.NO_TRIVIA)

    def rest_dim(self, here: Any, c: list) -> A.Rest:
        return _Rest(here)                  # the rule is its one token

    def if_else(self, here: Any, c: list) -> A.IfExpr:
        return _IfExpr(c[0], c[1], c[2], here, False)

    def if_absent(self, here: Any, c: list) -> A.IfExpr:
        return _IfExpr(c[0], c[1], None, here, False)

    def or_op(self, here: Any, c: list) -> A.BinOp:
        return _BinOp("or", c[0], c[1], here, False)

    def and_op(self, here: Any, c: list) -> A.BinOp:
        return _BinOp("and", c[0], c[1], here, False)

    def not_op(self, here: Any, c: list) -> A.UnaryOp:
        return _UnaryOp("not", c[0], here, False)

    def compare(self, here: Any, c: list) -> A.BinOp:
        return _BinOp(c[1], c[0], c[2], here, False)

    def neg(self, here: Any, c: list) -> A.UnaryOp:
        return _UnaryOp("-", c[0], here, False)

    def pow(self, here: Any, c: list) -> A.BinOp:
        return _BinOp("**", c[0], c[2], here, False)

    def index(self, here: Any, c: list) -> A.Index:
        return _Index(c[0], c[1], here, False)

    def attr(self, here: Any, c: list) -> A.Attr:
        return _Attr(c[0], c[1], here, False)

    def arguments(self, here: Any, c: list) -> list:
        return c

    def pos_arg(self, here: Any, c: list) -> Any:
        return c[0]

    def kw_arg(self, here: Any, c: list) -> tuple:
        return (c[0], c[1])

    def number(self, here: Any, c: list) -> A.Num:
        text = c[0]
        value = float(text) if "." in text or "e" in text or "E" in text else int(text)
        return _Num(value, here, False, text)

    def string(self, here: Any, c: list) -> A.Str:
        return _Str(unquote(c[0]), here, False)

    def true(self, here: Any, c: list) -> A.Const:
        return _Const(True, here, False)

    def false(self, here: Any, c: list) -> A.Const:
        return _Const(False, here, False)

    def none(self, here: Any, c: list) -> A.Const:
        return _Const(None, here, False)

    def paren(self, here: Any, c: list) -> Any:
        return A.with_parens(c[0])

    def tuple_lit(self, here: Any, c: list) -> A.TupleLit:
        return A.TupleLit(tuple(x for x in c if x is not None), span=here)

    def list_lit(self, here: Any, c: list) -> A.ListLit:
        return A.ListLit(tuple(x for x in c if x is not None), span=here)

    def seq_list(self, here: Any, c: list) -> A.ListLit:
        return A.ListLit(tuple(x for x in c if x is not None), seq=True, span=here)

    def _comp(self, here: Any, c: list, seq: bool, key: Any = None) -> A.Comprehension:
        elt, *rest = c
        clauses = tuple(x for x in rest if isinstance(x, A.CompFor))
        cond = next((x for x in rest if x is not None and not isinstance(x, A.CompFor)), None)
        return A.Comprehension(elt=elt, clauses=clauses, cond=cond, key=key, seq=seq, span=here)

    def list_comp(self, here: Any, c: list) -> A.Comprehension:
        return self._comp(here, c, seq=False)

    def seq_comp(self, here: Any, c: list) -> A.Comprehension:
        return self._comp(here, c, seq=True)

    def seq_named(self, here: Any, c: list) -> A.SeqNamed:
        return A.SeqNamed(tuple(x for x in c if x is not None), span=here)

    def seq_named_comp(self, here: Any, c: list) -> A.Comprehension:
        (key, value), *rest = c
        return self._comp(here, [value, *rest], seq=True, key=key)

    def entry(self, here: Any, c: list) -> tuple:
        tok = c[0]
        span = _token_span(here, tok)
        key = A.Str(unquote(tok), span=span) if tok[0] in "\"'" else A.Name(tok, span=span)
        return (key, c[1])

    @staticmethod
    def _merged(c: list) -> tuple[str | None, list]:
        """The optional merged-layer name (``reparam "fused" {...}``) and the rest of the children."""
        if c and isinstance(c[0], str):
            return unquote(c[0]), c[1:]
        return None, c[1:] if c and c[0] is None else c          # the [STRING] placeholder when absent

    def reparam(self, here: Any, c: list) -> A.Reparam:
        merged, rest = self._merged(c)
        return A.Reparam(tuple(rest), merged, span=here)

    def reparam_list(self, here: Any, c: list) -> A.ReparamList:
        merged, rest = self._merged(c)
        return A.ReparamList(A.ListLit(tuple(x for x in rest if x is not None), span=here), merged, span=here)

    def reparam_comp(self, here: Any, c: list) -> A.ReparamList:
        merged, rest = self._merged(c)
        return A.ReparamList(self._comp(here, rest, seq=False), merged, span=here)

    def branch(self, here: Any, c: list) -> tuple:
        return (c[0], c[1])

    def comp_for(self, here: Any, c: list) -> A.CompFor:
        targets, parens = c[0] if isinstance(c[0], list) else (c[0], False)
        return A.CompFor(targets=targets, iterable=c[1], span=here, parens=parens)

    def comp_if(self, here: Any, c: list) -> Any:
        return c[0]

    def targets(self, here: Any, c: list) -> tuple:
        return tuple(c)

    def paren_targets(self, here: Any, c: list) -> list:
        return [tuple(c), True]


def parse(text: str, file: str = "<string>") -> A.Module:
    """Parse .arch source text into a Module; raises ParseError with a span on bad input."""
    with gc_paused():           # linear time on large specs (see archdsl.gcpause)
        return _parse_rule(text, file, "start")


def _parse_rule(text: str, file: str, rule: str) -> Any:
    """Parse ``text`` from grammar rule ``rule`` and transform it; every failure is an ArchError."""
    if len(text.encode("utf-8", errors="replace")) > MAX_SOURCE_BYTES:
        raise LimitError(Diagnostic(f"spec file is larger than {MAX_SOURCE_BYTES // 1024 // 1024} MiB",
                                    Span(file=file), "a spec this large is generated: split it into imported files"))
    try:                    # the lean parser asks _too_deep of the stretches that could exceed the nesting limits
        lean = _LeanToAst(file)
        lean_comments: list = []
        result = fastparse.parse(text, rule, lean, lean_comments, Comment, nesting=_too_deep)
    except Exception:       # noqa: BLE001 - any problem: lark parses again and reports it exactly as it always has
        pass
    else:
        if rule == "start":
            result = attach(result, lean_comments, text.split("\n"), arch_layout(text, lean.doc_spans), fresh=True)
        return result
    _check_nesting(text, file)
    comments: list = []
    _seen.comments = comments
    try:
        tree = _parser().parse(text, start=rule)
    except lark.exceptions.UnexpectedInput as exc:
        raise _parse_errors(exc, text, file, rule) from None
    except lark.exceptions.LarkError as exc:  # pragma: no cover - lark internals
        raise ParseError(Diagnostic(str(exc).splitlines()[0], Span(file=file), "the grammar is grammar/arch.lark"),
                         {file: text}) from None
    finally:
        _seen.comments = None
    try:
        transformer = _ToAst(file)
        result = transformer.transform(tree)
        if rule == "start":
            result = attach(result, comments, text.split("\n"), arch_layout(text, transformer.doc_spans),
                            fresh=True)
        return result
    except (RecursionError, lark.exceptions.VisitError) as exc:
        if isinstance(exc, lark.exceptions.VisitError) and isinstance(exc.orig_exc, ParseError):
            raise ParseError(exc.orig_exc.diagnostics, {file: text}) from None
        if isinstance(exc, lark.exceptions.VisitError) and not isinstance(exc.orig_exc, RecursionError):
            raise
        raise LimitError(Diagnostic("expressions nest too deeply", Span(file=file),
                                    "split the expression into named values"), {file: text}) from None


def _parse_errors(exc: lark.exceptions.UnexpectedInput, text: str, file: str, rule: str) -> ParseError:
    """The ParseError for ``exc``, with the independent errors found after it (a whole file only)."""
    terminals = _parser().terminals
    first = diagnose(exc, text, file, terminals, rule)
    if rule != "start":
        return ParseError(first, sources={file: text})

    def reparse(rest: str) -> lark.exceptions.UnexpectedInput | None:
        try:
            _parser().parse(rest, start="start")
        except lark.exceptions.UnexpectedInput as again:
            return again
        return None

    found = recover(text, file, first, resume_after(exc, first), reparse, terminals)
    return ParseError(found, sources={file: text})


def parse_expression(text: str, file: str = "<string>", line: int = 1, column: int = 1) -> A.Expr:
    """Parse one expression whose first character sits at ``line:column`` of ``file`` (YAML, templates)."""
    return _parse_fragment(text, file, "expr", line, column)


def parse_tensor_type(text: str, file: str = "<string>", line: int = 1, column: int = 1) -> A.TensorTypeExpr:
    """Parse a tensor type such as ``[N, C, H, W]`` or ``int64[B, T]`` (YAML ``in:`` entries)."""
    return _parse_fragment(text, file, "tensor_type", line, column)


def parse_type_name(text: str, file: str = "<string>", line: int = 1, column: int = 1) -> A.TypeName:
    """Parse a parameter type such as ``int`` or ``list[int]``, returned in canonical spelling."""
    return _parse_fragment(text, file, "type_name", line, column)


def _parse_fragment(text: str, file: str, rule: str, line: int, column: int) -> Any:
    """Parse a fragment placed at ``line:column``: spans in the result and in errors are shifted there."""
    if (line, column) == (1, 1):
        return _parse_rule(text, file, rule)
    try:
        return _shifted(_parse_rule(text, file, rule), line, column)
    except RecursionError:
        raise LimitError(Diagnostic("expressions nest too deeply", Span(file=file, line=line, column=column),
                                    "split the expression into named values")) from None
    except ArchError as exc:
        diags = [dataclasses.replace(d, span=_shift_span(d.span, line, column) if d.span else None,
                                     notes=tuple((t, _shift_span(s, line, column) if s else None) for t, s in d.notes))
                 for d in exc.diagnostics]
        raise type(exc)(diags) from None


def _shift_span(span: Span, line: int, column: int) -> Span:
    """``span`` (relative to a fragment) moved to a fragment that starts at ``line:column``."""
    col = column - 1 if span.line == 1 else 0
    end_col = column - 1 if span.end_line == 1 else 0
    return span.model_copy(update={"line": span.line + line - 1, "column": span.column + col,
                                   "end_line": span.end_line + line - 1, "end_column": span.end_column + end_col})


def _shifted(node: Any, line: int, column: int) -> Any:
    """A copy of a syntax (sub)tree with every span shifted by ``_shift_span``."""
    if isinstance(node, Span):
        return _shift_span(node, line, column)
    if isinstance(node, tuple):
        return tuple(_shifted(x, line, column) for x in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {f.name: _shifted(getattr(node, f.name), line, column) for f in dataclasses.fields(node)}
        return dataclasses.replace(node, **changes)
    return node


# Tokens that deepen an expression tree, one regular-expression step each: strings, comments, numbers, words
# other than and/or/not/if/else and characters no counted token starts with are taken possessively in front of
# the next token that counts (operators, brackets, commas, newlines), so Python sees only those. The tokens are
# those of scanning with ``"..."|'...'|#...|number|word|\|>|\*\*|//|[=!<>]=|[-+*/%@<>.]|[()[\]{},\n]`` and
# skipping everything else (tests/syntax/test_fastparse.py checks the two agree).
_WORD_OP = r"(?:and|or|not|if|else)(?!\w)"
_COUNTED = re.compile(r"""(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|#[^\n]*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"""
                      rf"""|(?!{_WORD_OP})[A-Za-z_]\w*|[^-+*/%@<>.=!|()\[\]{{}},\n"'#\w]|(?![A-Za-z_\d])\w"""
                      r"""|=(?!=)|!(?!=)|\|(?!>)|["'])*+"""
                      rf"""(\|>|\*\*|//|[=!<>]=|[-+*/%@<>.]|[()\[\]{{}},\n]|{_WORD_OP}|\Z)""")


def _chain_depth(text: str, limit: int) -> int | None:
    """Offset of the operator at which an expression's estimated tree depth first exceeds ``limit`` (else None).

    Counts operators, calls and indexing along each chain, adding up across open brackets and restarting at
    commas and statement ends; a cheap upper bound of the depth the parser and evaluators will recurse to.
    """
    stack: list[list[Any]] = [["{", 0]]           # [opening bracket, levels inside it]
    total = 0
    for m in _COUNTED.finditer(text):
        tok = m.group(1)
        if not tok:
            break
        c = tok[0]
        if c in "([{":
            weight = 3 if c == "(" else 2     # a call is three levels of the parse tree
            stack[-1][1] += weight
            total += weight
            stack.append([c, 0])
            if total > limit:
                return m.start(1)
            continue
        elif c in ")]}":
            if len(stack) > 1:
                total -= stack.pop()[1]
            continue
        elif c == "," or (c == "\n" and stack[-1][0] == "{"):
            total -= stack[-1][1]
            stack[-1][1] = 0
            continue
        elif c == "\n":
            continue
        stack[-1][1] += 1
        total += 1
        if total > limit:
            return m.start(1)
    return None


def _too_deep(text: str) -> bool:
    """Whether ``_check_nesting`` refuses ``text`` (the lean parser asks this of its long stretches)."""
    return len(_open_brackets(text, stop_at=MAX_NESTING)) > MAX_NESTING or _chain_depth(text, MAX_CHAIN) is not None


def _check_nesting(text: str, file: str) -> None:
    """Refuse absurdly deep bracket nesting before the parser recurses on it."""
    stack = _open_brackets(text, stop_at=MAX_NESTING)
    if len(stack) > MAX_NESTING:
        raise LimitError(Diagnostic(f"brackets nest deeper than {MAX_NESTING} levels",
                                    _offset_span(text, stack[-1], file), "split the expression into named values"),
                         {file: text})
    at = _chain_depth(text, MAX_CHAIN)
    if at is not None:
        raise LimitError(Diagnostic(f"expressions nest too deeply (more than {MAX_CHAIN} operators, calls and "
                                    "brackets in one chain)", _offset_span(text, at, file),
                                    "split the expression into named values"), {file: text})
