"""Golden op errors: a shape rule's complaint, rendered at the user's call site with the input notes and the
op's hint (what to write instead). The hints themselves are declared by the ops (archdsl/ops/*.py; a wrong
rank says it once per op class, ``OpDef.rank_hint``).
"""

from __future__ import annotations

import pytest

import archdsl
from archdsl.errors import ArchError, OpError, ShapeError
from archdsl.ir.types import TensorType
from archdsl.ops.base import OpDef, expect_rank, norm_axis
from archdsl.ops.conv import Conv1d, Conv2d
from archdsl.ops.linear import Linear
from archdsl.ops.norm import BatchNorm2d
from archdsl.ops.pool import MaxPool2d
from archdsl.ops.regularize import Dropout2d

GOLDEN = [
    pytest.param(
        """\
model M() {
  in x: [N, 3, 32]
  conv = Conv2d(16, 3)
  out x |> conv
}
""",
        """\
<string>:3:10: error: Conv2d: expects a tensor of rank 4, got [N, 3, 32]
    3 |   conv = Conv2d(16, 3)
      |          ^~~~~~~~~~~~~
  note: the input [N, 3, 32] comes from here (at <string>:2:3)
    2 |   in x: [N, 3, 32]
      |   ^~~~~~~~~~~~~~~~
  hint: Conv1d takes [N, C, L], Conv2d [N, C, H, W], Conv3d [N, C, D, H, W]: pick the one of your input's rank, or reshape/unsqueeze the input (a [C, H, W] image needs a batch axis)
""",
        id="conv2d-rank"),
    pytest.param(
        """\
model M() {
  in x: [N, 30, H, W]
  out x |> GroupNorm(4)
}
""",
        """\
<string>:3:12: error: GroupNorm: 30 channels are not divisible by num_groups=4
    3 |   out x |> GroupNorm(4)
      |            ^~~~~~~~~~~~
  note: the input [N, 30, H, W] comes from here (at <string>:2:3)
    2 |   in x: [N, 30, H, W]
      |   ^~~~~~~~~~~~~~~~~~~
  hint: choose num_groups dividing 30 (1 normalises all channels together, 30 each alone)
""",
        id="groupnorm-groups"),
    pytest.param(
        """\
model M() {
  in a: [N, 4, 8]
  in b: [N, 6, 8]
  out a @ b
}
""",
        """\
<string>:4:7: error: MatMul: inner dims differ: [N, 4, 8] @ [N, 6, 8] (8 vs 6)
    4 |   out a @ b
      |       ^~~~~
  note: input 1, [N, 4, 8], comes from here (at <string>:2:3)
    2 |   in a: [N, 4, 8]
      |   ^~~~~~~~~~~~~~~
  note: input 2, [N, 6, 8], comes from here (at <string>:3:3)
    3 |   in b: [N, 6, 8]
      |   ^~~~~~~~~~~~~~~
  hint: the last axis of a must equal the second-to-last of b: transpose(-2, -1) one operand
""",
        id="matmul-inner"),
    pytest.param(
        """\
model M() {
  in a: [N, 8, 16, 16]
  in b: [N, 8, 8, 8]
  out concat([a, b], 1)
}
""",
        """\
<string>:4:7: error: Concat: along axis 1: tensor 2 [N, 8, 8, 8] differs from tensor 1 [N, 8, 16, 16] on axis 2 (8 vs 16)
    4 |   out concat([a, b], 1)
      |       ^~~~~~~~~~~~~~~~~
  note: input 1, [N, 8, 16, 16], comes from here (at <string>:2:3)
    2 |   in a: [N, 8, 16, 16]
      |   ^~~~~~~~~~~~~~~~~~~~
  note: input 2, [N, 8, 8, 8], comes from here (at <string>:3:3)
    3 |   in b: [N, 8, 8, 8]
      |   ^~~~~~~~~~~~~~~~~~
  hint: all axes but dim=1 must match: resize, pool or pad one tensor, or concat along the axis where they differ
""",
        id="concat-axis"),
    pytest.param(
        """\
model M() {
  in x: [N, C, H, W]
  fc = Linear(10)
  out x |> flatten(1) |> fc
}
""",
        """\
<string>:3:8: error: Linear: needs a known feature size on the last axis, got [N, C*H*W]
    3 |   fc = Linear(10)
      |        ^~~~~~~~~~
  note: the input [N, C*H*W] comes from here (at <string>:4:12)
    4 |   out x |> flatten(1) |> fc
      |            ^~~~~~~~~~
  hint: declare the last axis of the input with a number or a parameter bound to one; after convs over a free-size image, pool to a known size first: `|> AdaptiveAvgPool2d(1) |> flatten(1)`
""",
        id="linear-unknown-features"),
    pytest.param(
        """\
model M() {
  in x: [N, 3, 2, 2]
  out x |> MaxPool2d(3)
}
""",
        """\
<string>:3:12: error: MaxPool2d: input [N, 3, 2, 2] is too small for kernel (3, 3) with padding (0, 0)
    3 |   out x |> MaxPool2d(3)
      |            ^~~~~~~~~~~~
  note: the input [N, 3, 2, 2] comes from here (at <string>:2:3)
    2 |   in x: [N, 3, 2, 2]
      |   ^~~~~~~~~~~~~~~~~~
  hint: use a smaller kernel, more padding or ceil_mode=true, or an adaptive pool (AdaptiveAvgPool2d(1)) that fits any size
""",
        id="maxpool-too-small"),
    pytest.param(
        """\
model M() {
  in x: [N, 3, 8, 8]
  ln = LayerNorm(3)
  out x |> ln
}
""",
        """\
<string>:3:8: error: LayerNorm: input [N, 3, 8, 8] does not end with normalized_shape [3]
    3 |   ln = LayerNorm(3)
      |        ^~~~~~~~~~~~
  note: the input [N, 3, 8, 8] comes from here (at <string>:2:3)
    2 |   in x: [N, 3, 8, 8]
      |   ^~~~~~~~~~~~~~~~~~
  hint: normalized_shape names the input's trailing axes: give their sizes, or leave it out to normalise the last axis; for [N, C, H, W] use GroupNorm(1, C) or permute first
""",
        id="layernorm-shape"),
]


@pytest.mark.parametrize(("source", "expected"), GOLDEN)
def test_golden_op_error(source: str, expected: str) -> None:
    """The spec fails with a ShapeError rendered exactly so: located at the op, notes at its inputs, a hint."""
    with pytest.raises(ArchError) as info:
        archdsl.compile(source)
    assert type(info.value) is ShapeError
    assert info.value.render() == expected.rstrip("\n")
    assert all(d.hint and d.span for d in info.value.diagnostics)


@pytest.mark.parametrize("op", [Conv1d(out_channels=8, kernel_size=3), Conv2d(out_channels=8, kernel_size=3),
                                BatchNorm2d(), MaxPool2d(kernel_size=2), Dropout2d()],
                         ids=lambda op: op.name)
def test_a_wrong_rank_gives_the_op_class_hint(op: OpDef) -> None:
    """expect_rank's hint is the one the op class declares (one place per class, not a string per call)."""
    assert type(op).rank_hint
    with pytest.raises(OpError) as info:
        expect_rank(op, TensorType(shape=(2, 3)), 4)
    assert info.value.hint == type(op).rank_hint


def test_a_wrong_rank_without_a_declared_hint_says_what_rank_to_make() -> None:
    """An op that declares no rank hint still says what to do."""
    op = Linear(out_features=4)
    assert type(op).rank_hint is None
    with pytest.raises(OpError) as info:
        expect_rank(op, TensorType(shape=(2, 3)), 3)
    assert info.value.hint == "reshape, flatten or unsqueeze the input to rank 3 first"


@pytest.mark.parametrize(("axis", "rank", "hint"), [(4, 3, "axes of a rank-3 tensor run from 0 to 2 (or -3 to -1 "
                                                               "from the end)"),
                                                    (0, 0, "a scalar has no axes: reshape it to [1] first")])
def test_an_axis_out_of_range_says_which_axes_exist(axis: int, rank: int, hint: str) -> None:
    """norm_axis's hint names the valid range (or the way out of a scalar)."""
    op = MaxPool2d(kernel_size=2)
    with pytest.raises(OpError) as info:
        norm_axis(op, axis, rank)
    assert info.value.hint == hint
