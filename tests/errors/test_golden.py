"""Golden error messages: one spec per error kind, with the exact rendered diagnostic (line:col, caret, notes).

Each case is the whole compiler-style rendering, so a change of wording, position or excerpt shows up here.
"""

from __future__ import annotations

import pytest

import archdsl
from archdsl.errors import ArchError, ElaborationError, LimitError, ParseError, ShapeError, SpecImportError

GOLDEN = [
    pytest.param(
        ParseError,
        """\
model M() {
  in x: [N, 3]
  out x |>
}
""",
        """\
<string>:4:1: error: unexpected '}'; expected '(', '[', a name, a number, a string
    4 | }
      | ^
  hint: an expression is missing here: after an operator, '=' or ',' comes a value
""",
        id="unexpected-token"),
    pytest.param(
        ParseError,
        """\
model M() {
  in x: [N, 3]
  out x $ 2
}
""",
        """\
<string>:3:9: error: unexpected character '$'
    3 |   out x $ 2
      |         ^
  hint: remove it: .arch text uses names, numbers, strings, brackets and the operators of the grammar
""",
        id="unexpected-character"),
    pytest.param(
        ParseError,
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
        id="unexpected-end-of-file"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 3, H, W]
  conv = Conv2D(8, 3)
  out x |> conv
}
""",
        """\
<string>:3:10: error: unknown op, block or function 'Conv2D'
    3 |   conv = Conv2D(8, 3)
      |          ^~~~~~
  hint: did you mean 'Conv2d'?
""",
        id="unknown-op"),
    pytest.param(
        ElaborationError,
        """\
block BasicBlock() {
  in x: [N, C]
  out relu(x)
}
model M() {
  in x: [N, 3]
  b = BasicBlok()
  out x |> b
}
""",
        """\
<string>:7:7: error: unknown op, block or function 'BasicBlok'
    7 |   b = BasicBlok()
      |       ^~~~~~~~~
  hint: did you mean 'BasicBlock'?
""",
        id="unknown-block"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 3, H, W]
  conv = Conv2d(8, 3, strid=2)
  out x |> conv
}
""",
        """\
<string>:3:10: error: Conv2d has no argument 'strid'
    3 |   conv = Conv2d(8, 3, strid=2)
      |          ^~~~~~~~~~~~~~~~~~~~~
  hint: did you mean 'stride'?
""",
        id="unknown-op-argument"),
    pytest.param(
        ElaborationError,
        """\
block B(planes: int) {
  in x: [N, C]
  fc = Linear(planes)
  out x |> fc
}
model M() {
  in x: [N, 3]
  b = B(plane=4)
  out x |> b
}
""",
        """\
<string>:8:7: error: block B has no parameter 'plane'
    8 |   b = B(plane=4)
      |       ^~~~~~~~~~
  hint: did you mean 'planes'?
""",
        id="unknown-block-argument"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 3, H, W]
  conv = Conv2d(8)
  out x |> conv
}
""",
        """\
<string>:3:10: error: Conv2d needs the argument 'kernel_size'
    3 |   conv = Conv2d(8)
      |          ^~~~~~~~~
  hint: Conv2d(out_channels, kernel_size, ...)
""",
        id="missing-op-argument"),
    pytest.param(
        ElaborationError,
        """\
block B(planes: int) {
  in x: [N, C]
  fc = Linear(planes)
  out x |> fc
}
model M() {
  in x: [N, 3]
  b = B()
  out x |> b
}
""",
        """\
<string>:8:7: error: block B needs the parameter 'planes: int'
    8 |   b = B()
      |       ^~~
  note: 'planes' is declared here (at <string>:1:9)
    1 | block B(planes: int) {
      |         ^~~~~~
  hint: pass it: B(..., planes=...), or give it a default in the block
""",
        id="missing-block-argument"),
    pytest.param(
        ElaborationError,
        """\
block B(planes: int) {
  in x: [N, C]
  fc = Linear(planes)
  out x |> fc
}
model M() {
  in x: [N, 3]
  b = B("64")
  out x |> b
}
""",
        """\
<string>:8:9: error: parameter 'planes' of B is declared int but got a string ('64')
    8 |   b = B("64")
      |         ^~~~
  note: 'planes' is declared here (at <string>:1:9)
    1 | block B(planes: int) {
      |         ^~~~~~
  hint: pass a value of type int
""",
        id="block-argument-type"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 3, H, W]
  conv = Conv2d(8, 3, padding_mode="mirror")
  out x |> conv
}
""",
        """\
<string>:3:36: error: Conv2d: bad value for 'padding_mode': input should be 'zeros', 'reflect', 'replicate' or 'circular'
    3 |   conv = Conv2d(8, 3, padding_mode="mirror")
      |                                    ^~~~~~~~
  hint: got a string ('mirror')
""",
        id="op-attribute-value"),
    pytest.param(
        ShapeError,
        """\
model M() {
  in x: [N, 3, H, W]
  a = Conv2d(64, 1)
  b = Conv2d(128, 1)
  out (x |> a) + (x |> b)
}
""",
        """\
<string>:5:7: error: Add: shapes [N, 64, H, W] and [N, 128, H, W] do not broadcast (dim 64 vs 128)
    5 |   out (x |> a) + (x |> b)
      |       ^~~~~~~~~~~~~~~~~~~
  note: input 1, [N, 64, H, W], comes from here (at <string>:3:7)
    3 |   a = Conv2d(64, 1)
      |       ^~~~~~~~~~~~~
  note: input 2, [N, 128, H, W], comes from here (at <string>:4:7)
    4 |   b = Conv2d(128, 1)
      |       ^~~~~~~~~~~~~~
  hint: sizes broadcast when they are equal or one of them is 1; the notes show which layer makes each shape
""",
        id="shape-mismatch"),
    pytest.param(
        ShapeError,
        """\
model M() {
  in x: [N, 6, H, W]
  conv = Conv2d(64, 3, groups=4)
  out x |> conv
}
""",
        """\
<string>:3:10: error: Conv2d: in_channels=6 and out_channels=64 must both be divisible by groups=4
    3 |   conv = Conv2d(64, 3, groups=4)
      |          ^~~~~~~~~~~~~~~~~~~~~~~
  note: the input [N, 6, H, W] comes from here (at <string>:2:3)
    2 |   in x: [N, 6, H, W]
      |   ^~~~~~~~~~~~~~~~~~
  hint: choose groups dividing both channel counts (groups=in_channels makes a depthwise conv)
""",
        id="groups"),
    pytest.param(
        ShapeError,
        """\
block B() {
  in x: [N, 64, H, W]
  out relu(x)
}
model M() {
  in x: [N, 32, H, W]
  b = B()
  out x |> b
}
""",
        """\
<string>:8:12: error: input 'x' of B expects [N, 64, H, W], got [N, 32, H, W]: dim 1 should be 64 but is 32
    8 |   out x |> b
      |            ^
  note: input 'x' of B is declared here (at <string>:2:3)
    2 |   in x: [N, 64, H, W]
      |   ^~~~~~~~~~~~~~~~~~~
  note: the tensor [N, 32, H, W] comes from here (at <string>:6:3)
    6 |   in x: [N, 32, H, W]
      |   ^~~~~~~~~~~~~~~~~~~
  hint: change the layer that makes this tensor, or the declared type
""",
        id="unify"),
    pytest.param(
        ShapeError,
        """\
block B() {
  in x: [N, C, H, W]
  in y: [N, C, H, W]
  out x + y
}
model M() {
  in x: [N, 8, H, W]
  in y: [N, 4, H, W]
  b = B()
  out b(x, y)
}
""",
        """\
<string>:10:7: error: input 'y' of B expects [N, C, H, W], got [N, 4, H, W]: dim 1 should be C = 8 but is 4
   10 |   out b(x, y)
      |       ^~~~~~~
  note: input 'y' of B is declared here (at <string>:3:3)
    3 |   in y: [N, C, H, W]
      |   ^~~~~~~~~~~~~~~~~~
  note: the tensor [N, 4, H, W] comes from here (at <string>:8:3)
    8 |   in y: [N, 4, H, W]
      |   ^~~~~~~~~~~~~~~~~~
  hint: change the layer that makes this tensor, or the declared type
""",
        id="unify-bound-dim"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 3]
  out relu(xs)
}
""",
        """\
<string>:3:12: error: unknown name 'xs'
    3 |   out relu(xs)
      |            ^~
  hint: did you mean 'x'?
""",
        id="undefined-name"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 3]
  y = relu(x)
  y = tanh(x)
  out y
}
""",
        """\
<string>:4:3: error: 'y' is already defined in this block
    4 |   y = tanh(x)
      |   ^~~~~~~~~~~
  note: first defined here (at <string>:3:3)
    3 |   y = relu(x)
      |   ^~~~~~~~~~~
  hint: a name is defined once per block: give this value a new name
""",
        id="duplicate-definition"),
    pytest.param(
        SpecImportError,
        """\
block B() {
  in x: [N]
  out x
}
block B() {
  in x: [N]
  out x
}
""",
        """\
<string>:5:1: error: 'B' is defined twice in this file
    5 | block B() {
      | ^~~~~~~~~~~
  hint: rename one of them: blocks, models and constants share one namespace
""",
        id="duplicate-block"),
    pytest.param(
        ElaborationError,
        """\
let a = b
let b = a
model M() {
  in x: [N, 3]
  out x * a
}
""",
        """\
<string>:1:1: error: constants are defined in terms of each other: 'a' -> 'b' -> 'a'
    1 | let a = b
      | ^~~~~~~~~
  note: 'b' is defined here (at <string>:2:1)
    2 | let b = a
      | ^~~~~~~~~
  hint: give one of them a value that does not refer back
""",
        id="cyclic-constants"),
    pytest.param(
        LimitError,
        """\
model M() {
  in x: [N, 3]
  body = [relu for i in range(10**6)]
  out x |> body
}
""",
        """\
<string>:3:25: error: range of 1,000,000 items is more than the limit of 10,000
    3 |   body = [relu for i in range(10**6)]
      |                         ^~~~~~~~~~~~
  hint: repeat counts this large are almost certainly a mistake
""",
        id="repeat-limit"),
    pytest.param(
        LimitError,
        """\
block B() {
  in x: [N, 3]
  inner = B()
  out x |> inner
}
model M() {
  in x: [N, 3]
  b = B()
  out x |> b
}
""",
        """\
<string>:4:12: error: blocks nest deeper than 64 levels (… -> B -> B -> B -> B -> B)
    4 |   out x |> inner
      |            ^~~~~
  hint: block B applies itself; a recursion must stop within 64 levels
""",
        id="nesting-limit"),
    pytest.param(
        ElaborationError,
        """\
model M(n: int = 3) {
  in x: [N, 3]
  out n
}
""",
        """\
<string>:3:7: error: `out` needs a tensor, got an int (3)
    3 |   out n
      |       ^
  hint: `out` returns a tensor: an input, or layers and ops applied to one
""",
        id="out-non-tensor"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 3]
  out x |> Linear(4)
}
""",
        """\
<string>:3:12: error: Linear has parameters, so it needs a name
    3 |   out x |> Linear(4)
      |            ^~~~~~~~~
  hint: declare it first: `my_linear = Linear(...)`, then use `x |> my_linear`
""",
        id="unnamed-layer"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 3, H, W]
  out x |> MaxPool2d(3, 2, 1, 1)
}
""",
        """\
<string>:3:12: error: MaxPool2d takes at most 3 positional arguments (kernel_size, stride, padding), got 4
    3 |   out x |> MaxPool2d(3, 2, 1, 1)
      |            ^~~~~~~~~~~~~~~~~~~~~
  hint: name the others: MaxPool2d(..., name=value); `archdsl ops max_pool2d` lists them
""",
        id="too-many-positional"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: flaot16[N, 3]
  out x
}
""",
        """\
<string>:2:9: error: unknown dtype 'flaot16'
    2 |   in x: flaot16[N, 3]
      |         ^~~~~~~~~~~~~
  hint: did you mean 'float16'?
""",
        id="unknown-dtype"),

]


@pytest.mark.parametrize(("cls", "source", "expected"), GOLDEN)
def test_golden_error(cls: type[ArchError], source: str, expected: str) -> None:
    """The spec fails with exactly this error class and this rendered diagnostic."""
    with pytest.raises(ArchError) as info:
        archdsl.compile(source)
    assert type(info.value) is cls
    assert info.value.render() == expected.rstrip("\n")


@pytest.mark.parametrize(("cls", "source", "expected"), GOLDEN)
def test_golden_error_has_a_location(cls: type[ArchError], source: str, expected: str) -> None:
    """Every diagnostic points at file:line:col, and its JSON form carries the message, span and hint."""
    with pytest.raises(ArchError) as info:
        archdsl.compile(source)
    first = info.value.diagnostics[0]
    assert first.span is not None and first.span.file == "<string>"
    assert expected.startswith(f"<string>:{first.span.line}:{first.span.column}: error: {first.message}")
    doc = info.value.to_json()
    assert '"message"' in doc and '"span"' in doc and '"hint"' in doc


@pytest.mark.parametrize(("cls", "source", "expected"), GOLDEN)
def test_golden_error_has_a_hint(cls: type[ArchError], source: str, expected: str) -> None:
    """Every error kind of the catalogue says what to do (the README promises a hint)."""
    with pytest.raises(ArchError) as info:
        archdsl.compile(source)
    assert all(d.hint for d in info.value.diagnostics), info.value.render()
