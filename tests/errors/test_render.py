"""How diagnostics print: location, excerpt and caret, notes, hints, long lines, and the JSON form."""

from __future__ import annotations

import json

from archdsl.errors import ArchError, Diagnostic, ElaborationError, UsageError
from archdsl.ir.types import Span

SOURCE = "model M() {\n  in x: [N, 3]\n\tout relu(y)\n}\n"


def span(line: int, column: int, end_column: int, file: str = "m.arch") -> Span:
    """A one-line span."""
    return Span(file=file, line=line, column=column, end_line=line, end_column=end_column)


def test_render_with_excerpt_note_and_hint() -> None:
    """``path:line:col: error: message``, the line, a caret as wide as the span, then notes and the hint."""
    d = Diagnostic("unknown name 'y'", span(3, 11, 12), "did you mean 'x'?",
                   notes=(("'x' is declared here", span(2, 3, 15)),))
    assert d.render({"m.arch": SOURCE}) == """\
m.arch:3:11: error: unknown name 'y'
    3 |  out relu(y)
      |           ^
  note: 'x' is declared here (at m.arch:2:3)
    2 |   in x: [N, 3]
      |   ^~~~~~~~~~~~
  hint: did you mean 'x'?"""


def test_tabs_keep_the_caret_aligned() -> None:
    """A tab counts as one column, as spans count it, so the caret stays under the right character."""
    lines = Diagnostic("x", span(3, 2, 5)).render({"m.arch": SOURCE}).splitlines()
    assert lines[1] == "    3 |  out relu(y)"
    assert lines[2] == "      |  ^~~"


def test_long_lines_are_cut_around_the_caret() -> None:
    """Lines longer than the excerpt width show a window with ellipses."""
    text = "a" * 300 + "X" + "b" * 300
    lines = Diagnostic("here", span(1, 301, 302)).render({"m.arch": text}).splitlines()
    assert lines[1] == "    1 | …" + "a" * 25 + "X" + "b" * 74 + "…"
    assert lines[2] == "      | " + " " * 26 + "^"


def test_span_outside_the_source_has_no_excerpt() -> None:
    """A stale span (line beyond the end) prints the location only."""
    assert Diagnostic("gone", span(40, 1, 2)).render({"m.arch": SOURCE}) == "m.arch:40:1: error: gone"


def test_pseudo_files_and_missing_sources() -> None:
    """No source available: the location and message only; no span at all: just the message."""
    assert Diagnostic("m", span(1, 1, 2, "<string>")).render() == "<string>:1:1: error: m"
    assert Diagnostic("m", hint="h").render() == "error: m\n  hint: h"


def test_warning_severity() -> None:
    """Warnings print as such."""
    assert Diagnostic("unused", severity="warning").render() == "warning: unused"


def test_json_form() -> None:
    """``--format json``: message, span (as fields), hint, severity and notes."""
    exc = ElaborationError(Diagnostic("bad", span(2, 3, 4), "fix it", notes=(("see", None),)), {"m.arch": SOURCE})
    doc = json.loads(exc.to_json())
    assert doc == {"diagnostics": [{
        "severity": "error", "message": "bad", "hint": "fix it",
        "span": {"file": "m.arch", "line": 2, "column": 3, "end_line": 2, "end_column": 4},
        "notes": [{"message": "see", "span": None}]}]}


def test_errors_are_one_family_with_exit_codes() -> None:
    """Spec errors exit 1, usage errors 2; a plain string becomes one diagnostic."""
    assert ElaborationError("x").exit_code == 1
    assert UsageError("x").exit_code == 2
    exc = ArchError("plain")
    assert [d.message for d in exc.diagnostics] == ["plain"] and str(exc) == "error: plain"
