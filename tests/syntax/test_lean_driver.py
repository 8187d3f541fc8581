"""The lean parser's own machinery against the references it stands in for: its scanner gives lark's tokens, its
keywords are lark's, it refuses whatever ``parser._check_nesting`` refuses, it never accepts text lark refuses
(random edits of valid specs), its trees are lark's on random expressions and generated specs, and packed spans
read back as Spans."""

from __future__ import annotations

import copy
import dataclasses
import gc
import pickle
import re
import string

import lark
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from archdsl.errors import ArchError
from archdsl.ir.types import Span
from archdsl.syntax import ast as A
from archdsl.syntax import fastparse, tables
from archdsl.syntax import parser as P
from archdsl.syntax.trivia import Comment
from tests.syntax.test_fastparse import SPECS, differences, lark_only


def lean(text: str, rule: str = "start", nesting=P._too_deep):
    """The lean parser's own tree (never lark's) and comments; raises Unsupported where it leaves the text to
    lark."""
    comments: list = []
    return fastparse.parse(text, rule, P._LeanToAst("f.arch"), comments, Comment, nesting=nesting), comments


def lark_tree(text: str, rule: str = "start"):
    """What the lark path makes of ``text`` (the tree and comments, with trivia attached), or its error text."""
    fn = {"start": P.parse, "expr": P.parse_expression, "tensor_type": P.parse_tensor_type,
          "type_name": P.parse_type_name}[rule]
    with pytest.MonkeyPatch.context() as patch:
        try:
            return lark_only(patch, fn, text, "f.arch")
        except ArchError as exc:
            return str(exc)


def check_same_as_lark(text: str, rule: str = "start") -> bool:
    """Where the lean parser accepts ``text``, lark accepts it too and the two give the same tree (spans, doc
    strings, comments and blank lines included); whether the lean parser accepted it."""
    try:
        lean(text, rule)
    except fastparse.Unsupported:
        return False
    expected = lark_tree(text, rule)
    assert not isinstance(expected, str), f"the lean parser accepts what lark refuses: {text!r}: {expected}"
    fn = {"start": P.parse, "expr": P.parse_expression, "tensor_type": P.parse_tensor_type,
          "type_name": P.parse_type_name}[rule]
    assert differences(expected, fn(text, "f.arch")) is None, text
    return True


# -- the grammar it reads -------------------------------------------------------------------------------------------
def test_written_for_the_shipped_grammar():
    """The lean parser reads grammar/arch.lark by hand: after an edit of the grammar, this fails until the parser
    is brought in line and its GRAMMAR_SHA256 updated (meanwhile every text goes to lark)."""
    assert fastparse.written_for_grammar()


def test_another_grammar_leaves_everything_to_lark(monkeypatch):
    monkeypatch.setattr(fastparse, "written_for_grammar", lambda: False)
    with pytest.raises(fastparse.Unsupported):
        lean("let a = 1\n")
    assert P.parse("let a = 1\n").items[0].targets == ("a",)


def test_keywords_are_larks():
    root = P._parser().parser.lexer.root_lexer
    root.scanner                                                # noqa: B018 - builds the callbacks
    words = {term.pattern.value for cb in root.callback.values() if isinstance(cb, lark.lexer.UnlessCallback)
             for term in cb.scanner.terminals}
    assert words == fastparse.KEYWORDS | {"*", "-"}         # and `*` (STAR) after `in`, `-` (MINUS) before a factor


# -- the scanner -------------------------------------------------------------------------------------------------
def lark_tokens(text: str) -> tuple[list[tuple[int, int]], list[int]] | str:
    """(start, end) of every token lark's root lexer finds, white space and comments skipped, and the offsets of
    the comments; where no terminal matches, the offset as a string."""
    root = P._parser().parser.lexer.root_lexer
    root.scanner                                                # noqa: B018
    match = re.compile(root.scanner._mres[0].pattern, root.scanner._mres[0].flags).match
    found, comments, pos = [], [], 0
    while pos < len(text):
        m = match(text, pos)
        if m is None or m.end() == pos:
            return str(pos)
        if m.lastgroup == "COMMENT":
            comments.append(m.start())
        elif m.lastgroup != "WS":
            found.append((m.start(), m.end()))
        pos = m.end()
    return found, comments


_ONE_CHARACTER_TOKENS = frozenset("+-*/%@<>=:,.{}()[];_" + string.ascii_letters + string.digits)


def lean_tokens(text: str) -> tuple[list[tuple[int, int]], list[int]] | str:
    """The same from the lean parser's scan: where it meets a character no terminal starts with, the offset."""
    try:
        scan = fastparse.Scan(text)
    except fastparse.Unsupported:                           # a quote that closes no string
        return "unclosed"
    found = []
    for value, start in zip(scan.values, scan.starts, strict=False):
        offset = scan.offset(start)
        assert text[offset:offset + len(value)] == value
        if len(value) == 1 and value not in _ONE_CHARACTER_TOKENS:
            return str(offset)
        found.append((offset, offset + len(value)))
    return found, fastparse.comments_of(text, scan.line_starts, lambda line, column, _: scan.offset(
        line << 23 | column))


def same_tokens(text: str) -> None:
    expected, got = lark_tokens(text), lean_tokens(text)
    if got == "unclosed":                       # lark finds no terminal at the quote (or before it)
        assert isinstance(expected, str)
    else:
        assert got == expected


PIECES = [*"ab_Z09.eE+-*/%@<>=!|&()[]{},;:# \t\n\r\"'\\é$", "...", "**", "//", "|>", "==", "1.5e-3", ".5", "x1",
          "in", "seq", "#c\n", '"s"', "'t'", "\f", "\v", '"a#b"', "# 'q\n"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_scanner_gives_lark_tokens(text):
    same_tokens(text)


@pytest.mark.parametrize("path", SPECS[:10], ids=lambda p: p.name)
def test_scanner_on_specs(path):
    same_tokens(path.read_text(encoding="utf-8"))


def test_one_object_per_distinct_text():
    scan = fastparse.Scan("block B(c: int) { in x: [N, c]\n  y = Linear(c) |> Linear(c) }")
    linears = [v for v in scan.values if v == "Linear"]
    assert len(linears) == 2 and linears[0] is linears[1]
    assert scan.values[-3:] == [None, None, None] and len(scan.starts) == len(scan.values) - 3


# -- the nesting limits ------------------------------------------------------------------------------------------
def test_few_tokens_cannot_exceed_the_limits():
    """A stretch of ``_FEW`` tokens or fewer is never given to ``_too_deep``: each token adds at most 3 to the
    estimate (``(``; ``...`` is three operators), so it cannot pass either limit."""
    assert 3 * fastparse._FEW <= P.MAX_CHAIN and fastparse._FEW <= P.MAX_NESTING
    assert not P._chain_depth("(" * (P.MAX_CHAIN // 3), P.MAX_CHAIN)
    assert P._chain_depth("(" * (P.MAX_CHAIN // 3 + 1), P.MAX_CHAIN) is not None


def deep_item(kind: str, size: int) -> str:
    """A top-level item whose nesting estimate or bracket depth grows with ``size``."""
    if kind == "parens":
        return "let p = " + "(" * size + "x" + ")" * size
    if kind == "chain":
        return "let c = x" + " + x" * size
    if kind == "calls":
        return "let f = " + "g(" * size + "x" + ")" * size
    if kind == "lines":                 # a long chain over lines inside braces: each line break starts afresh
        return "block B() {\n  out x" + "\n    |> f" * size + "\n}"
    if kind == "wrapped":               # ... and inside parentheses: line breaks change nothing
        return "let w = f(x" + "\n  + x" * size + ")"
    return "let l = [" + ", ".join(["x + y"] * size) + "]"     # commas start afresh


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["parens", "chain", "calls", "lines", "wrapped", "list"]),
                          st.integers(0, 520), st.sampled_from(["\n", "\n# note\n\n", " "])),
                min_size=1, max_size=3))
def test_refuses_what_check_nesting_refuses(items):
    """The lean parser refuses a text exactly where ``_check_nesting`` refuses it (items on the same line make
    one stretch; a line break between items starts afresh, as in the estimate)."""
    text = "".join(deep_item(kind, size) + sep for kind, size, sep in items)
    try:
        P._parser().parse(text, start="start")
    except lark.exceptions.LarkError:
        assume(False)                   # (items on one line: a `let` right after a `}` or a value)
    try:
        lean(text)
        accepted = True
    except fastparse.Unsupported as exc:
        assert "nesting" in str(exc), exc
        accepted = False
    assert accepted == (not P._too_deep(text))


def test_deep_nesting_is_refused_as_before():
    text = "model M() {\n  in x: [N]\n  out " + "(" * 150 + "x" + ")" * 150 + "\n}\n"
    with pytest.raises(fastparse.Unsupported):
        lean(text)
    with pytest.raises(P.LimitError) as error:
        P.parse(text, "d.arch")
    assert "expressions nest too deeply" in str(error.value)


def test_a_long_stretch_is_asked_once_per_fresh_line():
    """A stretch of more than ``_FEW`` tokens is measured on the tokens, and given to ``_check_nesting``'s test
    only where that measure passes a limit."""
    asked: list[str] = []
    deep = "let b = x" + " + x" * 460
    text = "let a = 1\n" + "let l = [" + ", ".join(["x"] * 200) + "]\n" + deep + "\nlet c = 2 let d = 3\n"
    lean(text, nesting=lambda stretch: asked.append(stretch) or False)
    assert asked == [deep]
    assert (fastparse.MAX_NESTING, fastparse.MAX_CHAIN) == (P.MAX_NESTING, P.MAX_CHAIN)


def check_shallow_never_less(text: str) -> None:
    """Where the token measure says a text stays within the limits, ``_check_nesting`` accepts it."""
    try:
        scan = fastparse.Scan(text)
    except fastparse.Unsupported:
        return
    if fastparse._shallow(scan.values, scan.starts, 0, len(scan.values) - 3):
        assert not P._too_deep(text), text


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_token_measure_on_specs(path):
    check_shallow_never_less(path.read_text(encoding="utf-8"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["parens", "chain", "calls", "lines", "wrapped", "list"]),
                          st.integers(100, 520), st.sampled_from(["\n", "\n# note\n\n", " "])),
                min_size=1, max_size=3), st.sampled_from(["", ".5.w + ", "x... + ", "a and b or not c if d else "]))
def test_token_measure_never_less_than_check_nesting(items, head):
    text = "".join(deep_item(kind, size).replace("= ", "= " + head, 1) + sep for kind, size, sep in items)
    check_shallow_never_less(text)


# -- never more than lark, and the same trees --------------------------------------------------------------------
def expressions(depth: int = 3) -> st.SearchStrategy[str]:
    leaf = st.sampled_from(["x", "c", "1", ".5", "2.e3", '"s{i}"', "true", "none", "if_", "elsewhere", "f()",
                            "seq[]", "seq{}", "()", "[]", "reparam {}", 'reparam "m" []', "in", "out", "as", "for",
                            "where", "import", "let", "or"])

    def grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        sep = st.sampled_from([", ", ",\n  ", " , # note\n "])
        op = st.sampled_from(["+", "-", "*", "//", "**", "|>", "==", "<", "and", "or", "@", "%", "/", ">=", "!="])
        return st.one_of(
            st.tuples(inner, op, inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
            st.tuples(inner, op, inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),         # precedence decides
            inner.map(lambda e: f"-{e}"), inner.map(lambda e: f"not {e}"), inner.map(lambda e: f"- ({e})"),
            st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} if {t[1]} else {t[2]}"),
            st.tuples(inner, inner).map(lambda t: f"{t[0]} if {t[1]}"),
            st.tuples(inner, st.lists(inner, max_size=3), sep).map(lambda t: f"{t[0]}({t[2].join(t[1])})"),
            st.tuples(inner, inner).map(lambda t: f"f(k={t[0]}, {t[1]},)"),
            st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"), inner.map(lambda e: f"{e}.w"),
            st.tuples(st.lists(inner, max_size=3), sep).map(lambda t: f"[{t[1].join(t[0])}]"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]}, {t[1]})"), inner.map(lambda e: f"({e},)"),
            inner.map(lambda e: f"({e})"), inner.map(lambda e: f"[{e},]"),
            st.tuples(inner, inner).map(lambda t: f"seq{{a: {t[0]},\n 'b c': {t[1]},}}"),
            st.tuples(inner, inner).map(lambda t: f"seq[{t[0]}, {t[1]}]"),
            st.tuples(inner, inner).map(lambda t: f"[{t[0]} for i in range(3) if {t[1]}]"),
            st.tuples(inner, inner).map(lambda t: f"seq[{t[0]} for (i, j) in {t[1]} for k in x]"),
            inner.map(lambda e: f"seq{{n: {e} for n, m in x}}"),
            st.tuples(inner, inner).map(lambda t: f'reparam "m" {{ a = {t[0]}; b = {t[1]} }}'),
            st.tuples(inner, inner).map(lambda t: f"reparam [{t[0]}, {t[1]}]"),
            inner.map(lambda e: f"reparam [{e} for i in k]"),
        )

    return st.recursive(leaf, grow, max_leaves=10)


@settings(max_examples=200, deadline=None)
@given(expressions(), expressions())
def test_random_expressions_same_tree_as_lark(a, b):
    text = f"block B(c: int = {b}) {{\n  in x: [N, ..., C]\n  y = {a}\n  out y |> ({b})\n}}\n"
    check_same_as_lark(text)
    check_same_as_lark(a, "expr")


OPERATORS = ["+", "-", "*", "/", "//", "%", "@", "**", "|>", "==", "!=", "<", "<=", ">", ">=", "and", "or", "if",
             "else", "for i in", "."]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", "-", "not ", "- not ", "not -", "- -"]),
                          st.sampled_from(["x", "1", "f(y)", "(z)", "a.b", "c[0]", "[k]", "in", "if", "and", "not",
                                           "for", "else", "where", "seq", "true"]),
                          st.sampled_from(OPERATORS)), min_size=1, max_size=5), st.sampled_from(["x", "-y", "not y"]))
def test_operator_sequences_same_tree_as_lark(parts, last):
    """Operators and prefixes in any order: precedence, associativity, what may stand where (``a < b < c``,
    ``a |> -b``, ``a + not b`` are refused by both) and spans agree with lark."""
    text = "".join(f"{prefix}{atom} {op} " for prefix, atom, op in parts) + last
    check_same_as_lark(text, "expr")
    check_same_as_lark(f"[{text}]", "expr")


TOKENS = ["x", "y", "1", "2.5", '"s"', "(", ")", "[", "]", "{", "}", ",", ":", ";", "=", "==", "+", "-", "*", "**",
          "/", "//", "%", "@", "|>", ".", "...", "<", ">=", "if", "else", "for", "in", "out", "let", "not", "and",
          "or", "seq", "reparam", "true", "none", "where", "as", "import", "block", "model", "\n", "#c\n"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([*SPECS[:12], "expr"]), st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(
    ["delete", "insert", "replace", "swap"]), st.sampled_from(TOKENS)), min_size=1, max_size=3), expressions())
def test_edited_specs_never_more_than_lark(path, edits, expression):
    """Valid text with a few tokens deleted, inserted, replaced or swapped: where the lean parser still accepts
    it, so does lark, with the same tree."""
    rule = "expr" if path == "expr" else "start"
    text = expression if path == "expr" else path.read_text(encoding="utf-8")
    if len(text) > 6000:
        text = text[:text.find("\n}\n", 3000) + 3]
    scan = fastparse.Scan(text)
    spans = [(scan.offset(s), scan.offset(s) + len(v)) for s, v in zip(scan.starts, scan.values, strict=False)]
    for at, how, token in edits:
        if not spans:
            break
        start, end = spans[at % len(spans)]
        if how == "delete":
            text = text[:start] + " " + text[end:]
        elif how == "insert":
            text = text[:start] + token + " " + text[start:]
        elif how == "replace":
            text = text[:start] + token + text[end:]
        else:
            other_start, other_end = spans[(at // 7) % len(spans)]
            if other_start > end:
                text = (text[:start] + text[other_start:other_end] + text[end:other_start] + text[start:end]
                        + text[other_end:])
        try:
            scan = fastparse.Scan(text)
        except fastparse.Unsupported:
            return
        spans = [(scan.offset(s), scan.offset(s) + len(v)) for s, v in zip(scan.starts, scan.values, strict=False)]
    check_same_as_lark(text, rule)


KEYWORD_POSITIONS = [        # where the lean parser reads a keyword's word as a name, as lark does
    "block {w}({w}: {w}[{w}], b: int = 1,) {{ in *{w}: {w}[N]; let {w} = 1; out o: {w}[] = x }}",
    "let a = f({w}={w}, {w}) + [{w} for {w}, b in {w} if {w}] |> {w}.{w}\n",
    "block B() {{ out {w} = -{w} ** {w} == ({w}, {w}[{w}]) }}\nmodel M() {{ out {w}: [N] = x }}",
    "let s = seq{{{w}: {w}, 'q': seq[{w} for ({w}) in {w}]}}\nlet r = reparam {{ {w} = 1; {w} = {w}\n}}\n",
    "import 'x.arch' as {w}\nlet a = {w} if {w} else {w}\n",
]


@pytest.mark.parametrize("word", sorted(fastparse.KEYWORDS))
@pytest.mark.parametrize("template", KEYWORD_POSITIONS)
def test_keywords_as_names_where_lark_reads_names(template, word):
    """A keyword's word where lark's state accepts only a name (or what starts an expression, for the words that
    start none) is a name, in the lean parser's tree as in lark's."""
    text = template.format(w=word)
    if word in fastparse._EXPRESSION_WORDS and template is not KEYWORD_POSITIONS[0]:
        check_same_as_lark(text)                # (the word is then the keyword where an expression starts)
    else:
        assert check_same_as_lark(text), text


@pytest.mark.parametrize("text", [
    "block B() { seq = 1 }", "block B() { x = 1; for = 2 }", "block B() { out x\n  as = 1 }",
    "let r = reparam { a = x\n  if = 1 }\n", "block B() { out f(not=1) }", "block B() { out true = 1 }",
])
def test_keywords_as_statement_targets_are_left_to_lark(text):
    """As a statement's first target (or a ``reparam {}`` label after an expression), a keyword's word may be
    read as the keyword (continuing what came before) or as a name, depending on lark's state: the lean parser
    leaves the text to lark, whose result is used either way."""
    with pytest.raises(fastparse.Unsupported):
        lean(text)
    expected = lark_tree(text)
    try:
        got = P.parse(text, "f.arch")
    except ArchError as exc:
        got = str(exc)
    assert differences(expected, got) is None if not isinstance(expected, str) else got == expected


def test_lark_states_take_keywords_as_the_lean_parser_assumes():
    """In lark's tables, a state that accepts a name accepts either no keyword other than those that start an
    expression, or a statement's or item's first keyword (``let`` among them: a statement or item may end there,
    where the lean parser reads no keyword's word as a name). So where a name or an expression may start after a
    token, every other keyword's word is read as a name by lark's contextual lexer, as by the lean parser."""
    from lark.parsers.lalr_analysis import Shift

    table = P._parser().parser.parser.parser.parse_table
    by_terminal = {word.upper(): word for word in fastparse.KEYWORDS}
    kinds = set()
    for row in table.states.values():
        if "NAME" in row:
            words = frozenset(by_terminal[s] for s in row if s in by_terminal)
            assert words <= fastparse._EXPRESSION_WORDS or "let" in words, sorted(words)
            kinds.add((all(action is Shift for action, _ in row.values()), words))
    assert (True, frozenset()) in kinds and (True, fastparse._EXPRESSION_WORDS) in kinds


def test_expression_words_are_the_yaml_readers():
    from archdsl.syntax.yaml_frontend import EXPRESSION_WORDS

    assert fastparse._EXPRESSION_WORDS == EXPRESSION_WORDS


@pytest.mark.parametrize("text, accepted", [
    ("a < b < c", False), ("a |> -b", False), ("-a ** -b ** c", True), ("a ** b |> c * d", True),
    ("not a == b and not c or d", True), ("a + not b", False), ("a if b if c else d", False),
    ("a if b else c if d", True), ("x |> f ** 2", True), ("-(x) |> f", True), ("a == (b == c)", True),
    ("f(a=1, b)", True), ("f(1=a)", False), ("a + not", True), ("not not", False), ("x |> not", True),
    ("f(in=in, if)", True), ("seq", False), ("seq(1)", False), ("x |> -y", False), ("[x for i in k if c if d]", False), ("x[1][2].y(3)", True),
    ("(1, 2,)", True), ("(,)", False), ("[,]", False), ("seq{a: 1,}", True), ("seq{a: 1 for a in k}", True),
    ("reparam 'm' [x for i in k if c]", True), ("reparam {a = 1 b = 2}", True), ("x.5", False), ("1.e5", True),
])
def test_grammar_corners(text, accepted):
    assert check_same_as_lark(text, "expr") == accepted


@pytest.mark.parametrize("text, rule", [
    ("int64[B, T, ...,]", "tensor_type"), ("[]", "tensor_type"), ("T[]", "tensor_type"), ("[...]", "tensor_type"),
    ("list[tuple[int, float]]", "type_name"), ("int", "type_name"), ("list[int,]", "type_name"),
    ("[N, c] where c > 1", "tensor_type"),
])
def test_fragments(text, rule):
    check_same_as_lark(text, rule)


BLOCK = '''block B{i}(c: int{default}) {{{head}
  "Block {i}."
  in x: [N, c]{tail}
  a = Linear({w}){blank}
  n = LayerNorm()
  out x + (gelu(x |> a |> n) |> Linear(c, bias=true)) * {w}.5e-1
}}
'''


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", " = 4", " = -(2 ** 3)"]), st.sampled_from(["", "  # head"]),
                          st.sampled_from(["", "   # tail"]), st.sampled_from(["", "\n", "\n\n  # own line\n"])),
                min_size=1, max_size=4))
def test_generated_specs_same_tree_as_lark(parts):
    text = "\n".join(BLOCK.format(i=i, w=8 + i, default=d, head=h, tail=t, blank=b)
                     for i, (d, h, t, b) in enumerate(parts))
    assert check_same_as_lark(text)                         # no fallback to lark


def test_statements_and_items():
    text = ('import "std/blocks.arch" as std\nimport "x.arch"\nlet w = 4\n'
            "block B(c: int, k: list[int] = [1, 2,],) {\n  in *rest: [N, c, ...] where c % 2 == 0;\n"
            "  a, b = (c, d);\n  let z = 2\n  out y: [N] = a\n}\nmodel M() { out x; }\nmodel E() {}\n"
            'model D() { "doc" }\nblock F(a: int,) { out o = 1 }\n')
    assert check_same_as_lark(text)


def test_line_ends_tabs_and_unicode():
    """Windows line ends, tabs and non-ASCII text count as lark counts them (lines at ``\\n``, columns in
    characters)."""
    text = BLOCK.format(i=1, w=9, default="", head="  # é", tail="", blank="").replace("\n", "\r\n")
    assert check_same_as_lark(text.replace("  in x", "\tin x").replace("Block 1.", "Blöck ✓"))
    assert check_same_as_lark("let s = 'ü' # ∑\f\nlet t = s\r\n")


def test_lark_is_not_loaded_for_well_formed_text(monkeypatch):
    """A text the lean parser takes needs no lark tables (they are loaded when lark is first needed)."""
    monkeypatch.setattr(P, "_parser", lambda: pytest.fail("lark's tables were asked for"))
    assert P.parse(BLOCK.format(i=1, w=9, default="", head="", tail="", blank=""), "f.arch").items[0].name == "B1"


def test_no_garbage_left_behind():
    """The parse leaves no cycle for the collector (which would hold its tokens until the next full collection),
    when it succeeds and when it leaves the text to lark."""
    gc.collect()
    gc.disable()
    try:
        lean(BLOCK.format(i=1, w=9, default="", head="", tail="", blank=""))
        assert gc.collect() == 0
        with pytest.raises(fastparse.Unsupported):
            lean("block B() { out x + }")
        assert gc.collect() == 0
    finally:
        gc.enable()


# -- packed spans ----------------------------------------------------------------------------------------------
def test_packed_spans_read_as_spans():
    module = P.parse('block B(c: int) {\n  in x: [N, c]\n  out x |> (f(c))\n}\n', "p.arch")
    block = module.items[0]
    assert isinstance(A.raw_span(block), int)                 # stored packed
    assert block.span == Span(file="p.arch", line=1, column=1, end_line=4, end_column=2)
    out = block.body[1].value
    assert out.layer.parens and out.layer.span == Span(file="p.arch", line=3, column=13, end_line=3, end_column=17)
    assert block.params[0].span == Span(file="p.arch", line=1, column=9, end_line=1, end_column=10)
    for again in (copy.deepcopy(block), pickle.loads(pickle.dumps(block)), dataclasses.replace(block, name="C")):
        assert again.span == block.span and again.body[1].value.layer.span == out.layer.span
    assert isinstance(A.raw_span(pickle.loads(pickle.dumps(block))), Span)     # never a number of this process
    assert repr(block).count("Span(") > 3
    assert A.Name("x", span=Span(file="q")).span == Span(file="q")       # a Span given is kept as it is


def test_empty_rule_span_is_file_only():
    packed = A.pack(A.span_base("e.arch"), 0, 0, 0, 0)
    span = A.Name("x", span=packed).span
    assert span == Span(file="e.arch") and span.model_fields_set == {"file"}


def test_maker_builds_what_the_constructor_builds():
    for cls in (A.Name, A.Call, A.BlockDef, A.Num, A.Assign, A.ReparamList):
        fields = dataclasses.fields(cls)
        values = [f.default if f.default is not dataclasses.MISSING else (f.name if f.type == "str" else ())
                  for f in fields]
        made = A.maker(cls)(*values)
        built = cls(**{f.name: v for f, v in zip(fields, values, strict=True)})
        assert [getattr(made, f.name) for f in fields] == [getattr(built, f.name) for f in fields]


def test_grammar_fingerprint_is_the_files():
    import hashlib

    assert hashlib.sha256(tables.grammar_text().encode("utf-8")).hexdigest() == fastparse.GRAMMAR_SHA256
