"""Normalisation layers: BatchNorm."""

from __future__ import annotations

from typing import ClassVar

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.base import OpDef, ParamSpec, Trait, expect_rank


def channels(op: OpDef, x: TensorType) -> int:
    """The known channel count (axis 1)."""
    c = x.shape[1] if x.rank > 1 else None
    if not isinstance(c, int):
        raise OpError(f"{op.name} needs a known channel count on axis 1, got {x}")
    return c


class BatchNormNd(OpDef):
    """Per-channel (axis 1) batch normalisation; affine per channel in eval mode."""

    ranks: ClassVar[tuple[int, ...]] = (4,)
    traits: ClassVar = frozenset({Trait.TRAIN_EVAL})
    family: ClassVar = "norm"
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    track_running_stats: bool = True

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        expect_rank(self, inputs[0], *self.ranks)
        channels(self, inputs[0])
        return [inputs[0]]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        c = channels(self, inputs[0])
        out: dict[str, ParamSpec] = {}
        if self.affine:
            out["weight"] = ParamSpec((c,), "ones", axis="channel")
            out["bias"] = ParamSpec((c,), "zeros", axis="channel")
        if self.track_running_stats:
            out["running_mean"] = ParamSpec((c,), "zeros", buffer=True, axis="channel")
            out["running_var"] = ParamSpec((c,), "ones", buffer=True, axis="channel")
            out["num_batches_tracked"] = ParamSpec((), "zeros", dtype="int64", buffer=True)
        return out


class BatchNorm1d(BatchNormNd):
    """BatchNorm over [N, C] or [N, C, L]."""

    name: ClassVar = "batch_norm1d"
    ranks: ClassVar = (2, 3)


class BatchNorm2d(BatchNormNd):
    """BatchNorm over [N, C, H, W]."""

    name: ClassVar = "batch_norm2d"
    ranks: ClassVar = (4,)


OPS = (BatchNorm1d, BatchNorm2d)
