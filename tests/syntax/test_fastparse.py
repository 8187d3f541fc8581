"""The lean parser (archdsl.syntax.fastparse) gives exactly lark's syntax tree: every node, span, doc string,
comment and blank line, on every spec the project ships and on fragments; bad input goes to lark."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archdsl.errors import ParseError
from archdsl.ir.types import Span
from archdsl.syntax import fastparse
from archdsl.syntax import parser as P
from archdsl.syntax.trivia import Comment

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted([*ROOT.joinpath("specs").rglob("*.arch"), *ROOT.joinpath("tests", "data").rglob("*.arch"),
                *ROOT.joinpath("examples").rglob("*.arch")])


def differences(a, b, path: str = "") -> str | None:
    """Where ``a`` and ``b`` differ, spans and compare=False fields included (None: identical)."""
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, Span):
        same = a.__dict__ == b.__dict__ and a.model_fields_set == b.model_fields_set
        return None if same else f"{path}: {a!r} vs {b!r}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            found = differences(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
            if found:
                return found
        return None
    if isinstance(a, (tuple, list)):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = differences(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def lark_only(monkeypatch, fn, *args):
    """``fn(*args)`` with the lean parser switched off (lark parses)."""
    with monkeypatch.context() as m:
        m.setattr(fastparse, "parse", lambda *a, **k: (_ for _ in ()).throw(fastparse.Unsupported("off")))
        return fn(*args)


def lean(text: str, rule: str = "start"):
    """The lean parser's own result (never lark's), and the comments it reported."""
    comments: list = []
    tree = fastparse.parse(text, rule, P._LeanToAst("f.arch"), comments, Comment, nesting=P._too_deep)
    return tree, comments


def test_specs_are_found():
    assert len(SPECS) >= 30


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_same_tree_as_lark(path, monkeypatch):
    text = path.read_text(encoding="utf-8")
    lean(text)                                  # the lean parser handles it itself (no fallback)
    expected = lark_only(monkeypatch, P.parse, text, str(path))
    assert differences(expected, P.parse(text, str(path))) is None


COMMENTED = '''# a file comment

import "std/blocks.arch" as std   # trailing
let width = 4
block B(c: int, k: list[int] = [1, 2,],) {
  "Doc string."
  in *rest: [N, c, ...] where c % 2 == 0
  # before a statement
  a, b = (x, y) if c > 1 else seq{p: Linear(c), "q r": relu}   # after it

  out y: [N, c] = reparam "fused" [f for (i, f) in k if i] |> seq[g(x, n=1.5e-3).h[0] for g in k]
}
model M() { in x: int64[B, T]; out -x ** 2 + (true or not none) }
'''


def test_comments_doc_strings_and_positions(monkeypatch):
    _, comments = lean(COMMENTED)
    assert [c.line for c in comments] == [1, 3, 8, 9]
    expected = lark_only(monkeypatch, P.parse, COMMENTED, "c.arch")
    assert differences(expected, P.parse(COMMENTED, "c.arch")) is None


@pytest.mark.parametrize("fn, text", [
    (P.parse_expression, "a |> f(1, k=2)[0].w ** -3"),
    (P.parse_tensor_type, "int64[B, T, ...]"),
    (P.parse_type_name, "list[tuple[int, float]]"),
])
def test_fragments(fn, text, monkeypatch):
    expected = lark_only(monkeypatch, fn, text, "y.yaml", 4, 9)
    assert differences(expected, fn(text, "y.yaml", 4, 9)) is None


@pytest.mark.parametrize("text", ["model M() { in x: [N] out x + }", "bloc M() {}", "model M() { in x: [N] 'x }"])
def test_bad_input_is_left_to_lark(text, monkeypatch):
    with pytest.raises((fastparse.Unsupported, ParseError)):     # lark then parses, and reports, again
        lean(text)
    with pytest.raises(ParseError) as lark_error:
        lark_only(monkeypatch, P.parse, text, "e.arch")
    with pytest.raises(ParseError) as error:
        P.parse(text, "e.arch")
    assert str(error.value) == str(lark_error.value)


# -- the nesting estimate's tokens ------------------------------------------------------------------------
# The straightforward scan: every token in order, the loop skipping strings, comments, numbers and other words.
_ALL_TOKENS = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|#[^\n]*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|"""
                         r"""[A-Za-z_]\w*|\|>|\*\*|//|[=!<>]=|[-+*/%@<>.]|[()\[\]{},\n]""")


def counted_reference(text: str) -> list[tuple[int, str]]:
    found = []
    for m in _ALL_TOKENS.finditer(text):
        tok = m.group()
        if tok[0] in "\"'#" or tok[0].isdigit() or (
                (tok[0].isalpha() or tok[0] == "_") and tok not in {"and", "or", "not", "if", "else"}):
            continue
        found.append((m.start(), tok))
    return found


def counted(text: str) -> list[tuple[int, str]]:
    return [(m.start(1), m.group(1)) for m in P._COUNTED.finditer(text) if m.group(1)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"ab_éd19٣.eE+-*/%@<>=!|&()[]{},;:# \t\n\r\"'\\", "and", "or", "not", "if",
                                 "else", "andx", "|>", "**", "//", "=="]), max_size=60).map("".join))
def test_nesting_tokens_match_a_plain_scan(text):
    assert counted(text) == counted_reference(text)


@pytest.mark.parametrize("path", SPECS[:8], ids=lambda p: p.name)
def test_nesting_tokens_on_specs(path):
    text = path.read_text(encoding="utf-8")
    assert counted(text) == counted_reference(text)


@pytest.mark.parametrize(("text", "tokens"), [
    ("", []), (" \t\n", []), ("# only a comment\n", []), ("a", [("a", 1, 1)]),
    ("#x\n  a #y\n\n b(", [("a", 2, 3), ("b", 4, 2), ("(", 4, 3)]), ("'#'# c", [("'#'", 1, 1)]),
])
def test_scan_skips_white_space_and_comments_before_and_after_tokens(text, tokens):
    scan = fastparse.Scan(text)
    assert scan.values[len(tokens):] == [None, None, None]
    assert [(v, s >> 23, s & (1 << 23) - 1) for v, s in zip(scan.values[:-3], scan.starts, strict=True)] == tokens


@pytest.mark.parametrize("tail", ["", "\n", "\n\n  \n", "\n\n# end\n"])
@pytest.mark.parametrize("path", SPECS[:12], ids=lambda p: p.name)
def test_attach_to_a_fresh_module_skips_nothing(path, tail, monkeypatch):
    """The parser's attach(fresh=True) (its shortcut where only blank lines follow the last item) gives what
    the full attachment gives."""
    from archdsl.syntax import trivia

    text = path.read_text(encoding="utf-8")
    text = "\n".join(line for line in text.split("\n") if not line.lstrip().startswith("#")).rstrip("\n") + tail
    fast = P.parse(text, "f.arch")
    full = trivia.attach
    monkeypatch.setattr(P, "attach", lambda *a, fresh=False: full(*a))
    assert differences(fast, P.parse(text, "f.arch")) is None
