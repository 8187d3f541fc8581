"""Golden messages for the container and tensor-type errors: the whole rendering (line:col, caret, hint, notes)."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.errors import ArchError, ElaborationError, ShapeError

GOLDEN = [
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 8]
  layers = [Linear(8) for i in range(2)]
  out layers[2](x)
}
""",
        """\
<string>:4:14: error: index 2 is out of range for a container of 2 entries
    4 |   out layers[2](x)
      |              ^
  hint: indices run from 0 to 1 (or from -1 backwards)
""",
        id="index-out-of-range"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 8]
  head = seq{drop: Dropout(0.1), fc: Linear(4)}
  out x |> head.fcc
}
""",
        """\
<string>:4:12: error: the container 'head' has no entry 'fcc'
    4 |   out x |> head.fcc
      |            ^~~~~~~~
  hint: did you mean 'fc'?
""",
        id="no-such-entry"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 8]
  fc = Linear(8)
  out fc[0](x)
}
""",
        """\
<string>:4:7: error: cannot index the layer 'fc' with an int
    4 |   out fc[0](x)
      |       ^~~~~
  hint: only containers (seq[...], seq{...}, reparam, lists of layers) have entries to index
""",
        id="index-a-layer"),
    pytest.param(
        ElaborationError,
        """\
block B() {
  in a: [N, 8]
  fc = Linear(8)
  out a |> fc
}
model M() {
  in x: [N, 8]
  b = B()
  out x |> b.fc
}
""",
        """\
<string>:9:12: error: '.fc' needs an import alias or a container on the left, got the layer 'b'
    9 |   out x |> b.fc
      |            ^~~~
  hint: a block's layers are not reachable from outside; use a container: `head = seq{fc: ...}`, `head.fc`
""",
        id="attribute-of-a-block"),
    pytest.param(
        ElaborationError,
        """\
block B() {
  in x: [..., C, ...]
  out relu(x)
}
model M() {
  in x: [N, 8]
  b = B()
  out x |> b
}
""",
        """\
<string>:2:18: error: a tensor type holds at most one '...'
    2 |   in x: [..., C, ...]
      |                  ^~~
  hint: one '...' stands for any number of dims: [N, ..., C]
""",
        id="two-ellipses"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, ...]
  out relu(x)
}
""",
        """\
<string>:2:13: error: a model input needs every dim; '...' is for block inputs and outputs
    2 |   in x: [N, ...]
      |             ^~~
  hint: name the dims instead: `[N, C, H, W]`
""",
        id="ellipsis-in-a-model-input"),
    pytest.param(
        ShapeError,
        """\
block B() {
  in x: [N, C, ..., 4]
  out relu(x)
}
model M() {
  in x: [4]
  b = B()
  out x |> b
}
""",
        """\
<string>:8:12: error: input 'x' of B expects a tensor of rank 3 or more [N, C, ..., 4], got the rank-1 tensor [4]
    8 |   out x |> b
      |            ^
  note: input 'x' of B is declared here (at <string>:2:3)
    2 |   in x: [N, C, ..., 4]
      |   ^~~~~~~~~~~~~~~~~~~~
  note: the tensor [4] comes from here (at <string>:6:3)
    6 |   in x: [4]
      |   ^~~~~~~~~
  hint: change the layer that makes this tensor, or the declared type
""",
        id="variadic-rank"),
    pytest.param(
        ElaborationError,
        """\
model M() {
  in x: [N, 8]
  fc = Linear(make_divisible(10, 8, round_limit=2))
  out x |> fc
}
""",
        """\
<string>:3:15: error: make_divisible: round_limit must be in (0, 1], got 2
    3 |   fc = Linear(make_divisible(10, 8, round_limit=2))
      |               ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
  hint: timm uses 0.9 (the default)
""",
        id="round-limit"),
]


@pytest.mark.parametrize(("cls", "source", "expected"), GOLDEN)
def test_golden_error(cls: type[ArchError], source: str, expected: str) -> None:
    """The error class and its exact rendering."""
    with pytest.raises(ArchError) as info:
        archdsl.compile(source)
    assert type(info.value) is cls
    assert info.value.render() + "\n" == expected
