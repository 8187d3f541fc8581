"""From lark's exceptions to located Diagnostics: unclosed brackets named at the bracket, and recovery.

Recovery (as rustc does) restarts the parser at the next statement or top-level item after an error, so one
run reports several independent syntax errors (up to ``errors.MAX_ERRORS``) instead of stopping at the first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import lark

from archdsl.errors import MAX_ERRORS, Diagnostic
from archdsl.ir.types import Span

_TOKEN_NAMES = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "LPAR": "'('", "RPAR": "')'",
    "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'", "COMMA": "','", "COLON": "':'",
    "EQUAL": "'='", "SEMICOLON": "';'", "$END": "the end of the file", "MINUS": "'-'",
    "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/', '//', '%' or '@'", "COMP_OP": "a comparison",
    "ELLIPSIS": "'...'",
}
_CLOSING = {"(": ")", "[": "]", "{": "}"}
_RECOVER_HEADER = "model __recover__() {"     # wraps the rest of a block body when recovery restarts inside it

# A line that starts a statement inside a block, or a top-level item (block, model, import).
_STATEMENT = re.compile(r"[ \t]*(?:in[ \t]+[A-Za-z_]|out\b|let[ \t]+[A-Za-z_]|[A-Za-z_]\w*(?:[ \t]*,[ \t]*[A-Za-z_]\w*)*"
                        r"[ \t]*=(?!=))")
_ITEM = re.compile(r"(?:block|model)[ \t]+[A-Za-z_]\w*[ \t]*\(|import[ \t]|let[ \t]+[A-Za-z_]\w*[ \t]*=(?!=)")
_CONTINUES = re.compile(r"(?:[,(\[{=+\-*/%@<>:]|\|>|\b(?:and|or|not|if|else|in|for))[ \t]*(?:#[^\n]*)?$")


def describe_tokens(expected: Iterable[str], terminals: Iterable) -> str:
    """The expected terminals in words: ``'|>'`` for lark's anonymous ``__ANON_0``, ``a name`` for NAME."""
    patterns = {t.name: t.pattern for t in terminals}
    names = set()
    for name in expected:
        pattern = patterns.get(name)
        if name in _TOKEN_NAMES:
            names.add(_TOKEN_NAMES[name])
        elif pattern is not None and pattern.type == "str":
            names.add(f"'{pattern.value}'")
        else:
            names.add(f"'{name.lower()}'" if name.isupper() and len(name) < 10 else name)
    shown = sorted(names)
    if not shown:
        return "the end of the input"
    return ", ".join(shown[:6] + (["…"] if len(shown) > 6 else []))


def diagnose(exc: lark.exceptions.UnexpectedInput, text: str, file: str, terminals: Iterable,
             rule: str = "start") -> Diagnostic:
    """The Diagnostic for one lark error; a bracket left open is named where it opens."""
    line = getattr(exc, "line", 1) or 1
    column = getattr(exc, "column", 1) or 1
    token = getattr(exc, "token", None)
    if isinstance(exc, lark.exceptions.UnexpectedToken):
        token = exc.token
        found = "end of file" if token.type == "$END" else f"'{token}'"
        msg = f"unexpected {found}; expected {describe_tokens(exc.expected, terminals)}"
        width = max(1, len(str(token)))
    elif isinstance(exc, lark.exceptions.UnexpectedCharacters):
        msg, width = f"unexpected character {text[exc.pos_in_stream]!r}", 1  # type: ignore[index]  # set here
    else:
        msg, width = "the spec ends in the middle of a construct", 1
    span = Span(file=file, line=line, column=column, end_line=line, end_column=column + width)
    at_end = token is not None and token.type == "$END"
    unclosed = _unclosed(text, token, at_end)
    if unclosed is not None:
        return _never_closed(text, file, unclosed, span, at_end, rule)
    hint = _hint_for(msg, rule)
    if token is not None and str(token) in ")]}" and token.type != "$END":
        opened = open_brackets(text[:token.start_pos])
        if opened and str(token) != _CLOSING[text[opened[-1]]]:
            where, opener = offset_span(text, opened[-1], file), text[opened[-1]]
            return Diagnostic(msg, span, f"'{token}' cannot close the '{opener}' at line {where.line}, column "
                              f"{where.column}", notes=((f"the '{opener}' is opened here", where),))
    return Diagnostic(msg, span, hint)


def _unclosed(text: str, token, at_end: bool) -> int | None:
    """Offset of the bracket left open that explains the error at ``token``, or None.

    At the end of the file it is the innermost bracket still open. Mid-file it is an open '(' or '[' from an
    earlier line when the parser stopped at the start of the next statement, or an open '{' when it stopped
    at the next block, model or import.
    """
    if at_end:
        opened = open_brackets(text)
        return opened[-1] if opened else None
    if token is None or token.start_pos is None:
        return None
    line_start = text.rfind("\n", 0, token.start_pos) + 1
    line = text[line_start:text.find("\n", line_start) if "\n" in text[line_start:] else len(text)]
    lead = line[:token.start_pos - line_start]
    item = _ITEM.match(line) is not None and (not lead.strip() or re.fullmatch(r"(block|model)[ \t]+", lead))
    statement = not lead.strip() and _STATEMENT.match(line) is not None
    if not (item or statement):
        return None
    opened = open_brackets(text[:line_start])
    if not opened:
        return None
    innermost = opened[-1]
    if text[innermost] in "([" or item:
        return innermost
    return None


def _never_closed(text: str, file: str, pos: int, stop: Span, at_end: bool, rule: str) -> Diagnostic:
    """``this '(' is never closed``, at the bracket, with a note where the parser found out."""
    opener = text[pos]
    note = "the next statement starts here, still inside it"
    if at_end:
        note = "the file ends here" if rule == "start" else "the text ends here"
    lines = text.split("\n", stop.line)
    item = None if at_end or stop.line > len(lines) else _ITEM.match(lines[stop.line - 1])
    if item is not None:       # the next block, model or import: point at its keyword
        word = item.group().split()[0]
        note = f"the next {word} starts here, still inside it"
        stop = Span(file=file, line=stop.line, column=1, end_line=stop.line, end_column=1 + len(word))
    return Diagnostic(f"this '{opener}' is never closed", offset_span(text, pos, file),
                      f"add the matching '{_CLOSING[opener]}'", notes=((note, stop),))


def resume_after(exc: lark.exceptions.UnexpectedInput, diag: Diagnostic) -> int:
    """The line after which recovery may restart: the parser's stop line, or the line before it when the
    error is a bracket left open before the statement the parser stopped at (that statement is checked)."""
    line = getattr(exc, "line", 1) or 1
    if diag.span is not None and diag.span.line < line and diag.notes and "next" in diag.notes[0][0]:
        return line - 1
    return line


def _hint_for(msg: str, rule: str) -> str:
    if msg.startswith("unexpected character") and msg[-2] in "\"'":
        return "a string ends with the same quote on the same line"
    if msg.startswith("unexpected character"):
        return "remove it: .arch text uses names, numbers, strings, brackets and the operators of the grammar"
    if "expected" in msg and "'='" in msg and rule == "start":
        return "a statement is `name = expr`, `in name: [dims]` or `out expr`"
    if msg.startswith("unexpected end of file"):
        return "the spec ends in the middle of a statement: finish it"
    if "a name, a number" in msg:
        return "an expression is missing here: after an operator, '=' or ',' comes a value"
    return "something is missing or extra just before here (the grammar is grammar/arch.lark)"


def recover(text: str, file: str, first: Diagnostic, stop_line: int,
            reparse: Callable[[str], lark.exceptions.UnexpectedInput | None],
            terminals: Iterable) -> list[Diagnostic]:
    """``first`` and the errors found by restarting after each one, up to MAX_ERRORS diagnostics in all.

    ``reparse(text)`` parses a padded remainder of the file (same line numbers) and returns lark's error or
    None. A restart inside a block is wrapped in a synthetic model header on the line before it.
    """
    found = [first]
    lines = text.split("\n")
    while len(found) < MAX_ERRORS:
        start = _restart_line(lines, stop_line)
        if start is None:
            break
        inside = not _ITEM.match(lines[start - 1])
        head = "\n" * (start - 2) + _RECOVER_HEADER + "\n" if inside else "\n" * (start - 1)
        rest = head + "\n".join(lines[start - 1:])
        exc = reparse(rest)
        if exc is None:
            break
        diag = diagnose(exc, rest, file, terminals)
        if diag.span is None or diag.span.line < start:
            break       # a complaint about the synthetic header: nothing more to learn
        found.append(diag)
        stop_line = max(resume_after(exc, diag), start)
    return found


def _restart_line(lines: list[str], after: int) -> int | None:
    """The 1-based number of the first line after ``after`` that starts a top-level item, or a statement
    directly inside a block or model (not inside ``reparam {...}``) whose previous line does not continue."""
    braces: list[bool] = []          # for each open '{': does it open a block or model body?
    previous = ""
    for i, line in enumerate(lines):
        if i >= after:
            if _ITEM.match(line):
                return i + 1
            if braces and braces[-1] and _STATEMENT.match(line) and not _CONTINUES.search(previous):
                return i + 1
        for m in _BRACKETS.finditer(line):
            ch = m.group()
            if ch == "{":
                braces.append(_ITEM.match(line) is not None and line.startswith(("block", "model")))
            elif ch == "}" and braces:
                braces.pop()
        if line.strip() and not line.lstrip().startswith("#"):
            previous = line.rstrip()
    return None


# Brackets outside string literals and comments (those are matched first and skipped).
_BRACKETS = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|#[^\n]*|[()\[\]{}]""")


def open_brackets(text: str, stop_at: int | None = None) -> list[int]:
    """Offsets of the brackets still open at the end of ``text``; stops early once more than ``stop_at`` are."""
    stack: list[int] = []
    for m in _BRACKETS.finditer(text):
        ch = m.group()
        if ch in "([{":
            stack.append(m.start())
            if stop_at is not None and len(stack) > stop_at:
                break
        elif ch in ")]}" and stack:
            stack.pop()
    return stack


def offset_span(text: str, pos: int, file: str) -> Span:
    """The one-character span at offset ``pos`` of ``text``."""
    line = text.count("\n", 0, pos) + 1
    col = pos - text.rfind("\n", 0, pos)
    return Span(file=file, line=line, column=col, end_line=line, end_column=col + 1)
