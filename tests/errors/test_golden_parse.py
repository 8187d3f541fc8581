"""Golden syntax errors: a bracket left open is named where it opens, and independent errors come together.

Each case is the whole compiler-style rendering of ``parse`` (every diagnostic of one run, in file order).
"""

from __future__ import annotations

import pytest

from archdsl.errors import MAX_ERRORS, ParseError
from archdsl.syntax.parser import parse

GOLDEN = [
    pytest.param(
        """\
model M() {
  in x: [N, 3]
  y = relu(x
  out y
}
""",
        """\
<string>:3:11: error: this '(' is never closed
    3 |   y = relu(x
      |           ^
  note: the next statement starts here, still inside it (at <string>:4:3)
    4 |   out y
      |   ^~~
  hint: add the matching ')'
""",
        id="unclosed-paren"),
    pytest.param(
        """\
model M() {
  in x: [N, 3]
  y = [relu(x), x
  z = relu(x)
  out z
}
""",
        """\
<string>:3:7: error: this '[' is never closed
    3 |   y = [relu(x), x
      |       ^
  note: the next statement starts here, still inside it (at <string>:4:3)
    4 |   z = relu(x)
      |   ^
  hint: add the matching ']'
""",
        id="unclosed-list"),
    pytest.param(
        """\
block A() {
  in x: [N]
  out x

model B() {
  in x: [N]
  out x
}
""",
        """\
<string>:1:11: error: this '{' is never closed
    1 | block A() {
      |           ^
  note: the next model starts here, still inside it (at <string>:5:1)
    5 | model B() {
      | ^~~~~
  hint: add the matching '}'
""",
        id="unclosed-block"),
    pytest.param(
        """\
model M() {
  in x: [N, 3]
  out x
""",
        """\
<string>:1:11: error: this '{' is never closed
    1 | model M() {
      |           ^
  note: the file ends here (at <string>:3:7)
    3 |   out x
      |       ^
  hint: add the matching '}'
""",
        id="unclosed-at-end-of-file"),
    pytest.param(
        """\
model M() {
  in x: [N, 3]
  a = relu(x $ 2)
  b = relu(a
  c = 3 3
  out c
}
model Q() {
  in x: [N]
  out x |>
}
""",
        """\
<string>:3:14: error: unexpected character '$'
    3 |   a = relu(x $ 2)
      |              ^
  hint: remove it: .arch text uses names, numbers, strings, brackets and the operators of the grammar
<string>:4:11: error: this '(' is never closed
    4 |   b = relu(a
      |           ^
  note: the next statement starts here, still inside it (at <string>:5:3)
    5 |   c = 3 3
      |   ^
  hint: add the matching ')'
<string>:5:9: error: unexpected '3'; expected '(', ')', '*', '/', '//', '%' or '@', '**', '+' or '-', ',', …
    5 |   c = 3 3
      |         ^
  hint: something is missing or extra just before here (the grammar is grammar/arch.lark)
<string>:11:1: error: unexpected '}'; expected '(', '[', a name, a number, a string
   11 | }
      | ^
  hint: an expression is missing here: after an operator, '=' or ',' comes a value
""",
        id="several-independent-errors"),
    pytest.param(
        """\
model M() {
  in x: [N, 3]
  conv = Conv2d(64, 3 3,
                stride=2)
  out x |> conv
}
""",
        """\
<string>:3:23: error: unexpected '3'; expected '(', ')', '*', '/', '//', '%' or '@', '**', '+' or '-', ',', …
    3 |   conv = Conv2d(64, 3 3,
      |                       ^
  hint: something is missing or extra just before here (the grammar is grammar/arch.lark)
""",
        id="no-restart-on-a-continuation-line"),
    pytest.param(
        """\
model M() {
  in x: [N, 3]
  y = reparam {
    a = relu(x $)
    b = relu(x)
  }(x)
  out y
}
""",
        """\
<string>:4:16: error: unexpected character '$'
    4 |     a = relu(x $)
      |                ^
  hint: remove it: .arch text uses names, numbers, strings, brackets and the operators of the grammar
""",
        id="no-restart-inside-reparam"),
]


@pytest.mark.parametrize(("source", "expected"), GOLDEN)
def test_golden_parse_error(source: str, expected: str) -> None:
    """The text fails to parse with exactly these diagnostics, rendered."""
    with pytest.raises(ParseError) as info:
        parse(source)
    assert info.value.render() == expected.rstrip("\n")


def test_errors_are_capped() -> None:
    """A file with many broken statements reports MAX_ERRORS of them, in order, not hundreds."""
    body = "".join(f"  y{i} = relu(x $)\n" for i in range(3 * MAX_ERRORS))
    with pytest.raises(ParseError) as info:
        parse("model M() {\n  in x: [N]\n" + body + "  out x\n}\n")
    lines = [d.span.line for d in info.value.diagnostics]
    assert lines == list(range(3, 3 + MAX_ERRORS))


def test_a_fragment_error_is_not_multiplied() -> None:
    """Expression fragments (YAML, templates) report their one error; recovery is for whole files."""
    from archdsl.syntax.parser import parse_expression

    with pytest.raises(ParseError) as info:
        parse_expression("f(x $ 1) + g(", "<yaml>", 3, 9)
    assert len(info.value.diagnostics) == 1
    assert info.value.diagnostics[0].span.line == 3


@pytest.mark.parametrize(("source", "expected"), GOLDEN)
def test_every_diagnostic_has_a_hint(source: str, expected: str) -> None:
    """Each syntax error kind says what to do."""
    with pytest.raises(ParseError) as info:
        parse(source)
    assert all(d.hint for d in info.value.diagnostics)
