"""Canonical .arch text from the syntax tree: ``format_module(parse(text))`` is what ``archdsl fmt`` writes.

The output parses back to an equal tree (spans aside) and formatting is idempotent. Comments and
blank lines ride on the statements (``ast.Trivia``, see ``trivia``) and come out where they were;
parentheses are those the author wrote plus the ones the grammar's precedence needs. A statement
longer than ``LINE_WIDTH`` is laid out by ``layout``: pipelines continue on lines starting with ``|>``
(as many stages per line as fit), and brackets break with one item per line and a trailing comma.
"""

from __future__ import annotations

from collections.abc import Callable

from archdsl.syntax import ast as A
from archdsl.syntax.layout import HARD, LINE, SOFT, Doc, Fill, Group, IfBreak, Indent, Nest, render

LINE_WIDTH = 100
INDENT = "  "
CONTINUATION = "    "
# The grammar's keywords. Most are only contextual (`seq = ...` may still parse), but after
# an expression `if`, `for`, `import` ... would continue it, so such a statement is preceded by `;`.
KEYWORDS = frozenset({"import", "as", "in", "out", "let", "if", "else", "or", "and", "not",
                      "true", "false", "none", "seq", "reparam", "for", "where"})

# Binding strength, loosest first (mirrors the `?test ... ?postfix ?atom` chain in grammar/arch.lark).
TEST, OR, AND, NOT, CMP, ARITH, TERM, FACTOR, POWER, PIPE, POSTFIX, ATOM = range(12)

_BINOP_LEVEL = {
    "or": OR, "and": AND, "+": ARITH, "-": ARITH, "**": POWER,
    **dict.fromkeys(("==", "!=", "<", "<=", ">", ">="), CMP),
    **dict.fromkeys(("*", "/", "//", "%", "@"), TERM),
}
# The weakest operand each side of a binary operator accepts without parentheses.
_OPERANDS = {OR: (OR, AND), AND: (AND, NOT), CMP: (ARITH, ARITH), ARITH: (ARITH, TERM), TERM: (TERM, FACTOR),
             POWER: (PIPE, FACTOR)}


def quote(text: str) -> str:
    """A double-quoted .arch string literal whose value is ``text``."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{body}"'


def format_number(value: int | float) -> str:
    """A NUMBER token (floats via ``repr`` so they round-trip; infinity as ``1e999``)."""
    if isinstance(value, float):
        if value == float("inf"):
            return "1e999"
        return repr(value)
    return str(value)


def _join(items: list[Doc], sep: Doc) -> list[Doc]:
    out: list[Doc] = []
    for i, item in enumerate(items):
        if i:
            out.append(sep)
        out.append(item)
    return out


def bracket(open_: str, items: list[Doc], close: str, nest: int = len(INDENT), comma: str = "") -> Doc:
    """``open_ a, b close`` on one line; else the items on one line of their own; else one per line, with a trailing comma."""
    if not items:
        return open_ + close
    trailing = IfBreak(",", comma) if not comma else comma
    return Group([open_, Nest(nest, [SOFT, Group([*_join(items, [",", LINE]), trailing])]), SOFT, close])


class ExprPrinter:
    """Expression layout documents; ``indent`` is the statement's indentation, or None for one-line output."""

    def __init__(self, indent: str | None = None):
        self.indent = indent

    def doc(self, e: A.Expr, level: int = TEST) -> Doc:
        """``e`` as a layout document, parenthesised when the author wrote it so or it binds more loosely than ``level``."""
        method: Callable[[A.Expr], tuple[Doc, int]] = getattr(self, f"_{type(e).__name__}")
        doc, own = method(e)
        return ["(", doc, ")"] if own < level or e.parens else doc

    def expr(self, e: A.Expr, level: int = TEST) -> str:
        """``e`` on one line."""
        return render(self.doc(e, level), 1 << 30)

    def tensor_type(self, t: A.TensorTypeExpr) -> Doc:
        """``[N, C, H, W]`` or ``int64[B, T]``."""
        return bracket(f"{t.dtype or ''}[", ["..." if isinstance(d, A.Rest) else self.doc(d) for d in t.dims], "]")

    def _Num(self, e: A.Num) -> tuple[Doc, int]:
        text = e.text or format_number(e.value)
        return text, FACTOR if text.startswith("-") else ATOM

    def _Str(self, e: A.Str) -> tuple[Doc, int]:
        return quote(e.value), ATOM

    def _Const(self, e: A.Const) -> tuple[Doc, int]:
        return {True: "true", False: "false", None: "none"}[e.value], ATOM

    def _Name(self, e: A.Name) -> tuple[Doc, int]:
        return e.id, ATOM

    def _ListLit(self, e: A.ListLit) -> tuple[Doc, int]:
        return bracket(f"{'seq' if e.seq else ''}[", [self.doc(i) for i in e.items], "]"), ATOM

    def _TupleLit(self, e: A.TupleLit) -> tuple[Doc, int]:
        return bracket("(", [self.doc(i) for i in e.items], ")", comma="," if len(e.items) == 1 else ""), ATOM

    def _key(self, key: A.Expr) -> Doc:
        return key.id if isinstance(key, A.Name) else self.doc(key)

    def _Comprehension(self, e: A.Comprehension) -> tuple[Doc, int]:
        body: list[Doc] = [self.doc(e.elt)]
        if e.key is not None:
            body = [self._key(e.key), ": ", *body]
        for clause in e.clauses:
            targets = ", ".join(clause.targets)
            body += [LINE, f"for ({targets}) in " if clause.parens else f"for {targets} in ", self.doc(clause.iterable, OR)]
        if e.cond is not None:
            body += [LINE, "if ", self.doc(e.cond, OR)]
        open_, close = ("seq{", "}") if e.key is not None else (f"{'seq' if e.seq else ''}[", "]")
        return Group([open_, Nest(len(INDENT), [SOFT, *body]), SOFT, close]), ATOM

    def _SeqNamed(self, e: A.SeqNamed) -> tuple[Doc, int]:
        return bracket("seq{", [[self._key(k), ": ", self.doc(v)] for k, v in e.entries], "}"), ATOM

    def _Reparam(self, e: A.Reparam) -> tuple[Doc, int]:
        head = "reparam" if e.merged is None else f"reparam {quote(e.merged)}"
        if not e.branches:
            return f"{head} {{}}", ATOM
        if self.indent is None:
            return f"{head} {{ " + "; ".join(f"{n} = {self.expr(v)}" for n, v in e.branches) + " }", ATOM
        inner = ExprPrinter(self.indent + INDENT)
        names = [name for name, _ in e.branches][1:] + [""]
        lines: list[Doc] = []
        for (name, value), following in zip(e.branches, names, strict=True):
            lines += [HARD, name, " = ", inner.doc(value), ";" if following in KEYWORDS else ""]
        return [f"{head} {{", Indent(len(self.indent + INDENT), lines), Indent(len(self.indent), HARD), "}"], ATOM

    def _ReparamList(self, e: A.ReparamList) -> tuple[Doc, int]:
        return ["reparam" if e.merged is None else f"reparam {quote(e.merged)} ", self.doc(e.items)], ATOM

    def _BinOp(self, e: A.BinOp) -> tuple[Doc, int]:
        level = _BINOP_LEVEL[e.op]
        left, right = _OPERANDS[level]
        literal = (A.Num, A.Str, A.Const)
        if level not in (OR, AND, ARITH, TERM) or isinstance(e.left, (A.Name, *literal)) or isinstance(e.right, literal):
            # `**`, comparisons, `f(...) * 8` and `c * f(...)` never break (brackets inside them do)
            return [self.doc(e.left, left), f" {e.op} ", self.doc(e.right, right)], level
        return Group([self.doc(e.left, left), Nest(len(CONTINUATION), [LINE, e.op, " ", self.doc(e.right, right)])]), level

    def _UnaryOp(self, e: A.UnaryOp) -> tuple[Doc, int]:
        if e.op == "not":
            return ["not ", self.doc(e.operand, NOT)], NOT
        return ["-", self.doc(e.operand, FACTOR)], FACTOR

    def _IfExpr(self, e: A.IfExpr) -> tuple[Doc, int]:
        rest: list[Doc] = [LINE, "if ", self.doc(e.cond, OR)]
        if e.orelse is not None:
            rest += [LINE, "else ", self.doc(e.orelse, TEST)]
        return Group([self.doc(e.body, OR), Nest(len(CONTINUATION), rest)]), TEST

    def _Pipe(self, e: A.Pipe) -> tuple[Doc, int]:
        first, *stages = _pipe_stages(e)
        parts: list[Doc] = [Group(self.doc(first, PIPE))]
        for stage in stages:
            parts += [LINE, Group(["|> ", self.doc(stage, POSTFIX)])]
        return Nest(len(CONTINUATION), Fill(tuple(parts))), PIPE

    def _Call(self, e: A.Call) -> tuple[Doc, int]:
        args = [self.doc(a) for a in e.args] + [[f"{k}=", self.doc(v)] for k, v in e.kwargs]
        return [self.doc(e.func, POSTFIX), bracket("(", args, ")")], POSTFIX

    def _Index(self, e: A.Index) -> tuple[Doc, int]:
        index = Group(["[", Nest(len(INDENT), [SOFT, self.doc(e.index)]), SOFT, "]"])
        return [self.doc(e.obj, POSTFIX), index], POSTFIX

    def _Attr(self, e: A.Attr) -> tuple[Doc, int]:
        obj = self.doc(e.obj, POSTFIX)
        if isinstance(e.obj, A.Num) and not e.obj.parens and not isinstance(obj, list):
            obj = ["(", obj, ")"]                     # `1.x` would lex as the number `1.`
        return [obj, ".", e.name], POSTFIX


def _pipe_stages(e: A.Pipe) -> list[A.Expr]:
    """``a |> f |> g`` as ``[a, f, g]`` (a parenthesised inner pipe stays one stage)."""
    stages: list[A.Expr] = []
    node: A.Expr = e
    while isinstance(node, A.Pipe) and (node is e or not node.parens):
        stages.append(node.layer)
        node = node.value
    return [node, *reversed(stages)]


def _first_name(stmt: A.InputStmt | A.OutputStmt | A.Assign) -> str:
    """The name an assignment starts with ("" for other statements)."""
    return stmt.targets[0] if isinstance(stmt, A.Assign) and not stmt.let else ""


def format_expr(e: A.Expr) -> str:
    """One expression on one line (the form short YAML values take)."""
    return ExprPrinter().expr(e)


def format_tensor_type(t: A.TensorTypeExpr) -> str:
    """A tensor type on one line."""
    return render(ExprPrinter().tensor_type(t), 1 << 30)


def _stmt_doc(stmt: A.InputStmt | A.OutputStmt | A.Assign, indent: str) -> Doc:
    printer = ExprPrinter(indent)
    if isinstance(stmt, A.InputStmt):
        head: list[Doc] = [f"in {'*' if stmt.variadic else ''}{stmt.name}: ", printer.tensor_type(stmt.type)]
        return head if stmt.where is None else [*head, " where ", printer.doc(stmt.where)]
    if isinstance(stmt, A.OutputStmt):
        head = ["out "]
        if stmt.name is not None:
            head = [f"out {stmt.name}"]
            if stmt.type is not None:
                head += [": ", printer.tensor_type(stmt.type)]
            head.append(" = ")
        return [*head, printer.doc(stmt.value)]
    keyword = "let " if stmt.let else ""
    return [f"{keyword}{', '.join(stmt.targets)} = ", printer.doc(stmt.value)]


def format_value(e: A.Expr, indent: str = "", width: int = LINE_WIDTH) -> str:
    """An expression laid out in ``width`` columns, continuation lines indented from ``indent``."""
    return render(ExprPrinter(indent).doc(e), width, len(indent))


def format_stmt(stmt: A.InputStmt | A.OutputStmt | A.Assign, indent: str = "", width: int = LINE_WIDTH) -> str:
    """One statement (possibly over several lines), starting with ``indent``; comments not included."""
    return indent + render(_stmt_doc(stmt, indent), width, len(indent))


def _with_trailing(text: str, comment: str | None) -> str:
    return f"{text}  {comment}" if comment else text


def _before(lines: list[str], before: tuple[str, ...], indent: str) -> None:
    """Own-line comments and blank lines above a statement (a blank line never starts a group)."""
    for entry in before:
        if entry or (lines and lines[-1]):
            lines.append(indent + entry if entry else "")


def format_param(p: A.ParamDecl) -> str:
    """``name: type`` or ``name: type = default``."""
    default = f" = {format_expr(p.default)}" if p.default is not None else ""
    return f"{p.name}: {p.type}{default}"


def _param_doc(p: A.ParamDecl) -> Doc:
    default: Doc = [" = ", ExprPrinter(CONTINUATION).doc(p.default)] if p.default is not None else ""
    return [f"{p.name}: {p.type}", default]


def format_block(block: A.BlockDef) -> str:
    """A block or model definition with its comments (not those above it or after its ``}``)."""
    header = [f"{block.kind} {block.name}",
              bracket("(", [_param_doc(p) for p in block.params], ")", nest=len(CONTINUATION)), " {"]
    lines: list[str] = []
    _before(lines, block.header.before, "")
    lines.append(_with_trailing(render(header, LINE_WIDTH), block.header.trailing))
    if block.doc is not None:
        _before(lines, block.doc_trivia.before, INDENT)
        lines.append(_with_trailing(INDENT + quote(block.doc), block.doc_trivia.trailing))
    following = [_first_name(s) for s in block.body[1:]] + [""] if block.body else []
    for stmt, name in zip(block.body, following, strict=True):
        _before(lines, stmt.trivia.before, INDENT)
        text = format_stmt(stmt, INDENT) + (";" if name in KEYWORDS else "")
        lines.append(_with_trailing(text, stmt.trivia.trailing))
    _before(lines, block.end, INDENT)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join([*lines, "}"])


def _format_item(item: A.Import | A.Assign | A.BlockDef) -> str:
    if isinstance(item, A.Import):
        alias = f" as {item.alias}" if item.alias else ""
        return f"import {quote(item.path)}{alias}"
    if isinstance(item, A.Assign):
        return format_stmt(item)
    return format_block(item)


def format_module(module: A.Module) -> str:
    """The whole spec: comments where they were, a blank line around each block and between kinds of item."""
    lines: list[str] = []
    previous: type | None = None
    for item in module.items:
        before = item.trivia.before
        apart = previous is not None and (type(item) is not previous or A.BlockDef in (previous, type(item)))
        if lines and (apart or (before and before[0] == "")):
            lines.append("")
        _before(lines, before, "")
        lines.append(_with_trailing(_format_item(item), item.trivia.trailing))
        previous = type(item)
    if module.end and lines:
        lines.append("")
    _before(lines, module.end, "")
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""
