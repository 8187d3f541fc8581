"""The memoised op rules return fresh containers and the same answers as the rules themselves."""

from __future__ import annotations

from archdsl.ir.dims import SymDim
from archdsl.ir.types import TensorType
from archdsl.ops.base import apply_rules
from archdsl.ops.conv import Conv2d


def test_memoised_rules_equal_direct_rules_and_are_not_shared() -> None:
    h = SymDim.symbol("H")
    types = [TensorType(shape=(SymDim.symbol("N"), 8, h, h))]
    op = Conv2d(out_channels=16, kernel_size=3, stride=2, padding=1)
    resolved, outs, params = apply_rules(op, types)
    assert resolved == op.resolve(types) and outs == resolved.infer(types) and params == resolved.params(types)
    outs.clear()
    params.clear()
    again = apply_rules(op, types)
    assert again[1] == resolved.infer(types) and set(again[2]) == {"weight", "bias"}
