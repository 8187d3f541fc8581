"""Op attributes are strict: no silent '8' -> 8 or true -> 1 coercion; lists become tuples."""

from __future__ import annotations

import pytest

import archdsl


@pytest.mark.parametrize(("call", "field"), [('Conv2d("8", 3)', "out_channels"), ("Conv2d(8, 3, groups=true)", "groups"),
                                             ("Conv2d(8, 3.0)", "kernel_size")])
def test_wrong_attribute_types_are_errors(call: str, field: str) -> None:
    with pytest.raises(archdsl.ElaborationError, match=f"bad value for '{field}'"):
        archdsl.compile(f"model M() {{ in x: [N, 3, H, W]; c = {call}; out x |> c }}")


def test_lists_are_accepted_where_tuples_are_expected() -> None:
    g = archdsl.compile("model M() { in x: [N, 3, H, W]; c = Conv2d(8, [3, 1], padding=[1, 0]); out x |> c }")
    assert g.nodes[0].op.kernel_size == (3, 1)
