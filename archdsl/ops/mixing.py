"""Token-mixing pieces that are not plain layers: L_p normalisation.

Everything else the attention and MLP mixers need (projections, softmax, matmul, reshapes, free parameters, index
buffers) is written in the spec language as blocks of existing ops; see specs/levit.arch (LeViT's attention bias:
a Parameter table gathered by a build-time index Buffer) and specs/swiftformer.arch.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import field_validator

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.activation import expect_float
from archdsl.ops.base import OpDef, Trait, norm_axis
from archdsl.symmetry.contract import Pointwise


class Normalize(OpDef):
    """x / max(||x||_p, eps) over axis ``dim`` (F.normalize); a tuple of axes is normalised jointly.

    Used by SwiftFormer's efficient additive attention (Shaker et al., ICCV 2023) on queries, keys and the
    global attention weights.
    """

    name: ClassVar = "normalize"
    symmetry: ClassVar = Pointwise()           # odd: signs pass
    positional: ClassVar = ("dim",)
    traits: ClassVar = frozenset({Trait.ODD})
    family: ClassVar = "mixing"
    dim: int | tuple[int, ...] = 1
    p: float = 2.0
    eps: float = 1e-12

    @field_validator("p")
    @classmethod
    def _order(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"the norm order must be positive, got {v}")
        return v

    @field_validator("eps")
    @classmethod
    def _eps(cls, v: float) -> float:
        if v < 0:
            raise ValueError(f"eps must not be negative, got {v}")
        return v

    def axes(self, rank: int) -> tuple[int, ...]:
        """The normalised axes, non-negative and sorted; OpError when repeated or out of range."""
        dims = (self.dim,) if isinstance(self.dim, int) else self.dim
        if not dims:
            raise OpError("normalize needs at least one axis", "give dim=1 (channels) or dim=-1 (features)")
        axes = tuple(sorted(norm_axis(self, d, rank) for d in dims))
        if len(set(axes)) != len(axes):
            raise OpError(f"normalize: axis repeated in dim={self.dim}",
                          "name each axis once (a negative axis counts from the end: -1 is the last)")
        return axes

    def resolve(self, inputs: list[TensorType]) -> Normalize:
        axes = self.axes(inputs[0].rank)
        return self.model_copy(update={"dim": axes[0] if len(axes) == 1 else axes})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        expect_float(self, inputs[0])
        self.axes(inputs[0].rank)
        return [inputs[0]]


OPS = (Normalize,)
