"""Lowerings of regularisers; every train-only op reads ``self.training`` so ``model.eval()`` disables it."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import fn, spec_module
from archdsl.ir.types import TensorType
from archdsl.ops.regularize import Dropout, Dropout2d, LayerScale, StochasticDepth

_DROPOUT = {Dropout: "F.dropout", Dropout2d: "F.dropout2d"}


# fresh: the training result is new and the backward reads only the mask (eval: the input itself; codegen
# counts that as fresh only where the input is fresh and read by it alone: ``out = drop_path(b); out += x``)
@lowering(*_DROPOUT, fresh=True)
def _dropout(op: Dropout, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn(_DROPOUT[type(op)], args[0], repr(op.p), "self.training")


@lowering(StochasticDepth, fresh=True)
def _stochastic_depth(op: StochasticDepth, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("rt.functional.stochastic_depth", args[0], repr(op.p), repr(op.mode), "self.training")


@lowering(LayerScale, module=spec_module)
def _layer_scale(op: LayerScale, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    if op.dim == -1:
        return f"{args[0]} * {ref}.gamma"
    view = ", ".join(["-1"] + ["1"] * (ins[0].rank - 2))
    return f"{args[0]} * {ref}.gamma.view({view})"
