"""Canonical .arch text from the syntax tree: ``format_module(parse(text))`` is what ``archdsl fmt`` writes.

The output parses back to an equal tree (spans aside) and formatting is idempotent. Parentheses are
the minimum the grammar's precedence needs; pipelines longer than ``LINE_WIDTH`` continue on lines
starting with ``|>``. Comments are not part of the syntax tree, so formatting drops them.
"""

from __future__ import annotations

from collections.abc import Callable

from archdsl.syntax import ast as A

LINE_WIDTH = 100
INDENT = "  "
CONTINUATION = "    "
# The grammar's keywords. Most are only contextual (`seq = ...` may still parse), but after
# an expression `if`, `for`, `import` ... would continue it, so such a statement is preceded by `;`.
KEYWORDS = frozenset({"import", "as", "in", "out", "let", "if", "else", "or", "and", "not",
                      "true", "false", "none", "seq", "reparam", "for"})

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


class ExprPrinter:
    """Prints expressions; ``indent`` is the statement's indentation, or None for one-line output."""

    def __init__(self, indent: str | None = None):
        self.indent = indent

    def expr(self, e: A.Expr, level: int = TEST) -> str:
        """``e`` as text, parenthesised when it binds more loosely than ``level``."""
        method: Callable[[A.Expr], tuple[str, int]] = getattr(self, f"_{type(e).__name__}")
        text, own = method(e)
        return f"({text})" if own < level else text

    def join(self, items: tuple[A.Expr, ...]) -> str:
        """Comma-separated expressions."""
        return ", ".join(self.expr(i) for i in items)

    def tensor_type(self, t: A.TensorTypeExpr) -> str:
        """``[N, C, H, W]`` or ``int64[B, T]``."""
        return f"{t.dtype or ''}[{self.join(t.dims)}]"

    def _Num(self, e: A.Num) -> tuple[str, int]:
        text = format_number(e.value)
        return text, FACTOR if text.startswith("-") else ATOM

    def _Str(self, e: A.Str) -> tuple[str, int]:
        return quote(e.value), ATOM

    def _Const(self, e: A.Const) -> tuple[str, int]:
        return {True: "true", False: "false", None: "none"}[e.value], ATOM

    def _Name(self, e: A.Name) -> tuple[str, int]:
        return e.id, ATOM

    def _ListLit(self, e: A.ListLit) -> tuple[str, int]:
        return f"{'seq' if e.seq else ''}[{self.join(e.items)}]", ATOM

    def _TupleLit(self, e: A.TupleLit) -> tuple[str, int]:
        return (f"({self.expr(e.items[0])},)" if len(e.items) == 1 else f"({self.join(e.items)})"), ATOM

    def _key(self, key: A.Expr) -> str:
        return key.id if isinstance(key, A.Name) else self.expr(key)

    def _Comprehension(self, e: A.Comprehension) -> tuple[str, int]:
        body = self.expr(e.elt)
        if e.key is not None:
            body = f"{self._key(e.key)}: {body}"
        for clause in e.clauses:
            body += f" for {', '.join(clause.targets)} in {self.expr(clause.iterable, OR)}"
        if e.cond is not None:
            body += f" if {self.expr(e.cond, OR)}"
        if e.key is not None:
            return f"seq{{{body}}}", ATOM
        return f"{'seq' if e.seq else ''}[{body}]", ATOM

    def _SeqNamed(self, e: A.SeqNamed) -> tuple[str, int]:
        return "seq{" + ", ".join(f"{self._key(k)}: {self.expr(v)}" for k, v in e.entries) + "}", ATOM

    def _Reparam(self, e: A.Reparam) -> tuple[str, int]:
        if not e.branches:
            return "reparam {}", ATOM
        if self.indent is None:
            return "reparam { " + "; ".join(f"{n} = {self.expr(v)}" for n, v in e.branches) + " }", ATOM
        inner = ExprPrinter(self.indent + INDENT)
        lines = [f"{inner.indent}{name} = {inner.expr(value)}" for name, value in e.branches]
        names = [name for name, _ in e.branches]
        return "reparam {\n" + _join_lines(lines, names[1:] + [""]) + f"\n{self.indent}}}", ATOM

    def _ReparamList(self, e: A.ReparamList) -> tuple[str, int]:
        return "reparam" + self.expr(e.items), ATOM

    def _BinOp(self, e: A.BinOp) -> tuple[str, int]:
        level = _BINOP_LEVEL[e.op]
        left, right = _OPERANDS[level]
        return f"{self.expr(e.left, left)} {e.op} {self.expr(e.right, right)}", level

    def _UnaryOp(self, e: A.UnaryOp) -> tuple[str, int]:
        if e.op == "not":
            return f"not {self.expr(e.operand, NOT)}", NOT
        return f"-{self.expr(e.operand, FACTOR)}", FACTOR

    def _IfExpr(self, e: A.IfExpr) -> tuple[str, int]:
        text = f"{self.expr(e.body, OR)} if {self.expr(e.cond, OR)}"
        if e.orelse is not None:
            text += f" else {self.expr(e.orelse, TEST)}"
        return text, TEST

    def _Pipe(self, e: A.Pipe) -> tuple[str, int]:
        return f"{self.expr(e.value, PIPE)} |> {self.expr(e.layer, POSTFIX)}", PIPE

    def _Call(self, e: A.Call) -> tuple[str, int]:
        args = [self.expr(a) for a in e.args] + [f"{k}={self.expr(v)}" for k, v in e.kwargs]
        return f"{self.expr(e.func, POSTFIX)}({', '.join(args)})", POSTFIX

    def _Index(self, e: A.Index) -> tuple[str, int]:
        return f"{self.expr(e.obj, POSTFIX)}[{self.expr(e.index)}]", POSTFIX

    def _Attr(self, e: A.Attr) -> tuple[str, int]:
        obj = self.expr(e.obj, POSTFIX)
        if isinstance(e.obj, A.Num) and not obj.startswith("("):
            obj = f"({obj})"                    # `1.x` would lex as the number `1.`
        return f"{obj}.{e.name}", POSTFIX


def _join_lines(lines: list[str], next_names: list[str]) -> str:
    """Statements one per line, with `;` where the next one starts with a keyword used as a name."""
    return "\n".join(line + (";" if name in KEYWORDS else "") for line, name in zip(lines, next_names, strict=True))


def _first_name(stmt: A.InputStmt | A.OutputStmt | A.Assign) -> str:
    """The name an assignment starts with ("" for other statements)."""
    return stmt.targets[0] if isinstance(stmt, A.Assign) and not stmt.let else ""


def format_expr(e: A.Expr) -> str:
    """One expression on one line (the form YAML specs store)."""
    return ExprPrinter().expr(e)


def format_tensor_type(t: A.TensorTypeExpr) -> str:
    """A tensor type on one line."""
    return ExprPrinter().tensor_type(t)


def _pipe_stages(e: A.Pipe) -> list[A.Expr]:
    """``a |> f |> g`` as ``[a, f, g]``."""
    stages: list[A.Expr] = []
    node: A.Expr = e
    while isinstance(node, A.Pipe):
        stages.append(node.layer)
        node = node.value
    return [node, *reversed(stages)]


def _with_value(head: str, value: A.Expr, indent: str) -> str:
    """``head`` followed by ``value``; a long pipeline continues on ``|>`` lines."""
    printer = ExprPrinter(indent)
    flat = head + printer.expr(value)
    if len(flat) <= LINE_WIDTH or not isinstance(value, A.Pipe) or "\n" in flat:
        return flat
    first, *rest = _pipe_stages(value)
    lines = [head + printer.expr(first, PIPE)]
    for stage in rest:
        text = printer.expr(stage, POSTFIX)
        if len(lines[-1]) + len(text) + 4 > LINE_WIDTH:
            lines.append(f"{indent}{CONTINUATION}|> {text}")
        else:
            lines[-1] += f" |> {text}"
    return "\n".join(lines)


def format_stmt(stmt: A.InputStmt | A.OutputStmt | A.Assign, indent: str = "") -> str:
    """One statement (possibly over several lines), starting with ``indent``."""
    if isinstance(stmt, A.InputStmt):
        return f"{indent}in {stmt.name}: {format_tensor_type(stmt.type)}"
    if isinstance(stmt, A.OutputStmt):
        head = "out "
        if stmt.name is not None:
            annotation = f": {format_tensor_type(stmt.type)}" if stmt.type is not None else ""
            head = f"out {stmt.name}{annotation} = "
        return _with_value(indent + head, stmt.value, indent)
    keyword = "let " if stmt.let else ""
    return _with_value(f"{indent}{keyword}{', '.join(stmt.targets)} = ", stmt.value, indent)


def format_param(p: A.ParamDecl) -> str:
    """``name: type`` or ``name: type = default``."""
    default = f" = {format_expr(p.default)}" if p.default is not None else ""
    return f"{p.name}: {p.type}{default}"


def format_block(block: A.BlockDef) -> str:
    """A block or model definition."""
    params = [format_param(p) for p in block.params]
    header = f"{block.kind} {block.name}({', '.join(params)}) {{"
    if len(header) > LINE_WIDTH:
        listed = "".join(f"{CONTINUATION}{p},\n" for p in params)
        header = f"{block.kind} {block.name}(\n{listed}) {{"
    lines = [header]
    if block.doc is not None:
        lines.append(INDENT + quote(block.doc))
    body = [format_stmt(stmt, INDENT) for stmt in block.body]
    if body:
        lines.append(_join_lines(body, [_first_name(s) for s in block.body[1:]] + [""]))
    return "\n".join(lines + ["}"])


def _format_item(item: A.Import | A.Assign | A.BlockDef) -> str:
    if isinstance(item, A.Import):
        alias = f" as {item.alias}" if item.alias else ""
        return f"import {quote(item.path)}{alias}"
    if isinstance(item, A.Assign):
        return format_stmt(item)
    return format_block(item)


def format_module(module: A.Module) -> str:
    """The whole spec: imports and constants one per line, a blank line around each block."""
    out: list[str] = []
    previous: type | None = None
    for item in module.items:
        grouped = type(item) is previous and not isinstance(item, A.BlockDef)
        if out and not grouped:
            out.append("")
        out.append(_format_item(item))
        previous = type(item)
    return "\n".join(out) + "\n" if out else ""
