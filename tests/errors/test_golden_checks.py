"""Golden diagnostics of the checks that help instead of block: use before definition and cycles, dead code as
a warning (and names a static conditional leaves unused as nothing at all), did-you-mean by kind, errors inside
std blocks shown at the user's call site, and several independent errors in one run.
"""

from __future__ import annotations

import pytest

import archdsl
from archdsl.errors import ArchError, ArchWarning, ElaborationError, ShapeError, collect_warnings

GOLDEN = [
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 8]
  y = relu(b)
  b = tanh(x)
  out y
}
""",
        """\
<string>:3:12: error: 'b' is defined at 4:3, after this use
    3 |   y = relu(b)
      |            ^
  note: 'b' is defined here (at <string>:4:3)
    4 |   b = tanh(x)
      |   ^~~~~~~~~~~
  hint: statements run in order: move the definition of 'b' above this line
""",
        id="use-before-definition"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 8]
  a = relu(c) + x
  b = tanh(a)
  c = sigmoid(b)
  out c
}
""",
        """\
<string>:3:12: error: 'c' is defined at 5:3, after this use; dataflow must not form a cycle
    3 |   a = relu(c) + x
      |            ^
  note: 'c' is defined here (at <string>:5:3)
    5 |   c = sigmoid(b)
      |   ^~~~~~~~~~~~~~
  hint: these values depend on each other: 'a' -> 'c' -> 'b' -> 'a'; break the loop
""",
        id="dataflow-cycle"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 8]
  y = relu(y)
  out y
}
""",
        """\
<string>:3:12: error: 'y' is used in its own definition; dataflow must not form a cycle
    3 |   y = relu(y)
      |            ^
  hint: a value cannot depend on itself: compute 'y' from values defined above it
""",
        id="self-reference"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 8]
  out x |> flor
}
""",
        """\
<string>:3:12: error: unknown layer, op or block 'flor'
    3 |   out x |> flor
      |            ^~~~
  hint: define it as a block parameter, a layer (`name = ...`) or a top-level `let`
""",
        id="pipe-never-suggests-a-builtin"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 8]
  out relu(lenn)
}
""",
        """\
<string>:3:12: error: unknown name 'lenn'
    3 |   out relu(lenn)
      |            ^~~~
  hint: define it as a block parameter, a layer (`name = ...`) or a top-level `let`
""",
        id="value-never-suggests-a-builtin"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 8]
  body = seq[Linear(8) for i in rnage(2)]
  out x |> body
}
""",
        """\
<string>:3:33: error: unknown op, block or function 'rnage'
    3 |   body = seq[Linear(8) for i in rnage(2)]
      |                                 ^~~~~
  hint: did you mean the built-in function 'range'? (built-ins work on numbers and lists, not tensors)
""",
        id="builtin-named-as-such"),
    pytest.param(
        ShapeError,
        """\
import "std/blocks.arch"

model M() {
  in x: [N, 6, H, W]
  stem = BasicConv2d(64, 3, padding=1)
  side = Conv2d(32, 1)
  out (x |> stem) + (x |> side)
}
""",
        """\
<string>:7:7: error: Add: shapes [N, 64, H, W] and [N, 32, H, W] do not broadcast (dim 64 vs 32)
    7 |   out (x |> stem) + (x |> side)
      |       ^~~~~~~~~~~~~~~~~~~~~~~~~
  note: input 1, [N, 64, H, W], comes from here (at <string>:7:13)
    7 |   out (x |> stem) + (x |> side)
      |             ^~~~
  note: input 2, [N, 32, H, W], comes from here (at <string>:6:10)
    6 |   side = Conv2d(32, 1)
      |          ^~~~~~~~~~~~~
  hint: sizes broadcast when they are equal or one of them is 1; the notes show which layer makes each shape
""",
        id="std-block-output-from-the-call-site"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 8]
  a = relu(q)
  b = tanh(a)
  c = Linaer(4)
  out x |> c
}
""",
        """\
<string>:3:12: error: unknown name 'q'
    3 |   a = relu(q)
      |            ^
  hint: define it as a block parameter, a layer (`name = ...`) or a top-level `let`
<string>:5:7: error: unknown op, block or function 'Linaer'
    5 |   c = Linaer(4)
      |       ^~~~~~
  hint: did you mean 'Linear'?
""",
        id="independent-statements"),
    pytest.param(
        ElaborationError,
        """\
block B() {
  in x: [N, C]
  out relu(y)
}

model M() {
  in x: [N, 8]
  first = B()
  second = B()
  a = x |> first
  b = x |> second
  c = x |> tahn
  out a + b + c
}
""",
        """\
<string>:3:12: error: unknown name 'y'
    3 |   out relu(y)
      |            ^
  hint: define it as a block parameter, a layer (`name = ...`) or a top-level `let`
<string>:12:12: error: unknown layer, op or block 'tahn'
   12 |   c = x |> tahn
      |            ^~~~
  hint: did you mean 'tanh'?
""",
        id="a-failed-block-is-reported-once"),
]


@pytest.mark.parametrize(("cls", "source", "expected"), GOLDEN)
def test_golden_check(cls: type[ArchError], source: str, expected: str) -> None:
    """Exactly these diagnostics, of this class (the first error's), rendered."""
    with pytest.raises(ArchError) as info:
        archdsl.compile(source)
    assert type(info.value) is cls
    assert info.value.render() == expected.rstrip("\n")
    assert all(d.hint for d in info.value.diagnostics)


def test_an_error_inside_a_std_block_is_shown_where_the_user_applies_it() -> None:
    """The primary place is the user's line; the line of std/blocks.arch is the first note."""
    source = ('import "std/blocks.arch"\n\nmodel M() {\n  in x: [N, 6, H, W]\n'
              "  dw = ConvBNAct(64, 3, groups=5)\n  out x |> dw\n}\n")
    with pytest.raises(ShapeError) as info:
        archdsl.compile(source)
    d = info.value.diagnostics[0]
    assert (d.span.file, d.span.line, d.span.column) == ("<string>", 6, 12)
    assert d.message.startswith("Conv2d: in_channels=6 and out_channels=64 must both be divisible by groups=5")
    text, inner = d.notes[0]
    assert text == "found inside ConvBNAct, here" and inner.file.endswith("std/blocks.arch")


WARNINGS = [
    pytest.param(
        """\
model M() {
  in x: [N, 3]
  y = relu(x)
  out x
}
""",
        """\
<string>:3:3: warning: value 'y' is defined but never used
    3 |   y = relu(x)
      |   ^~~~~~~~~~~
  hint: remove it, or start its name with '_' to keep it
""",
        id="dead-value"),
    pytest.param(
        """\
model M() {
  in x: [N, 3]
  fc = Linear(4)
  out x
}
""",
        """\
<string>:3:3: warning: layer 'fc' is defined but never used
    3 |   fc = Linear(4)
      |   ^~~~~~~~~~~~~~
  hint: remove it, or start its name with '_' to keep it
""",
        id="dead-layer"),
]


@pytest.mark.parametrize(("source", "expected"), WARNINGS)
def test_dead_code_is_a_warning(source: str, expected: str) -> None:
    """The model still compiles; the warning is located and rendered like an error."""
    with collect_warnings() as found:
        archdsl.compile(source)
    assert "\n".join(w.render() for w in found) == expected.rstrip("\n")
    with pytest.warns(ArchWarning):         # without a collector: a Python warning
        archdsl.compile(source)


NOT_DEAD = {
    "value-in-the-branch-not-taken": """\
block B(down: bool = false) {
  in x: [N, C, H, W]
  d = Conv2d(8, 1)
  y = relu(x)
  out x |> d if down else y
}
model M() {
  in x: [N, 8, H, W]
  b = B()
  out x |> b
}
""",
    "let-unused-in-this-instantiation": """\
block B(k: int = 1) {
  in x: [N, C, H, W]
  let pad = k // 2
  d = Conv2d(8, k, padding=pad) if k > 1
  out x |> d
}
model M() {
  in x: [N, 8, H, W]
  b = B()
  out x |> b
}
""",
    "absent-layer-is-the-identity": """\
block B(down: bool = false) {
  in x: [N, C, H, W]
  d = Conv2d(8, 1) if down
  out d(x)
}
model M() {
  in x: [N, 8, H, W]
  b = B()
  out x |> b
}
""",
}


@pytest.mark.parametrize("source", NOT_DEAD.values(), ids=NOT_DEAD.keys())
def test_what_a_static_conditional_leaves_unused_is_fine(source: str) -> None:
    """Neither an error nor a warning: another instantiation uses it (the README: an absent layer is identity)."""
    with collect_warnings() as found:
        graph = archdsl.compile(source)
    assert found == [] and graph.outputs


def test_an_input_no_statement_reads_is_still_an_error() -> None:
    """Unlike dead values, a block input nobody reads is a mistake in the block's interface."""
    source = "block B() {\n  in x: [N]\n  in y: [N]\n  out relu(x)\n}\n" \
             "model M() {\n  in x: [N]\n  b = B()\n  out b(x, x)\n}\n"
    with pytest.raises(ElaborationError, match="input 'y' is defined but never used"):
        archdsl.compile(source)


def test_errors_stop_at_the_cap() -> None:
    """Many broken statements: MAX_ERRORS diagnostics, in order."""
    from archdsl.errors import MAX_ERRORS

    body = "".join(f"  v{i} = relu(missing{i})\n" for i in range(2 * MAX_ERRORS))
    with pytest.raises(ElaborationError) as info:
        archdsl.compile("model M() {\n  in x: [N]\n" + body + "  out x\n}\n")
    assert [d.span.line for d in info.value.diagnostics] == list(range(3, 3 + MAX_ERRORS))


def test_compiling_a_file_without_a_model_says_so() -> None:
    """The API's error for a library of blocks (the CLI's check says the same: tests/cli/test_check_strict.py)."""
    with pytest.raises(ElaborationError) as info:
        archdsl.compile("block B() {\n  in x: [N]\n  out x\n}\n")
    assert info.value.render() == (
        "error: <string> defines no model, so there is nothing to build\n  hint: a spec is built from a "
        "`model Name(...) { ... }`; a file of blocks is a library for other specs to import")
