"""Token-mixing pieces that are not plain layers: LeViT's attention-bias table and L_p normalisation.

Everything else the attention and MLP mixers need (projections, softmax, matmul, reshapes, free parameters)
is written in the spec language as blocks of existing ops; see specs/levit.arch and specs/swiftformer.arch.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import field_validator

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.activation import expect_float
from archdsl.ops.base import Cost, OpDef, ParamSpec, PositiveInt, Trait, norm_axis
from archdsl.symmetry.contract import Pinned, Pointwise


class AttentionBias(OpDef):
    """LeViT's learned attention bias [num_heads, Nq, Nk]: one value per head and relative patch offset.

    Graham et al., "LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference", ICCV 2021.
    Keys sit on a ``resolution`` grid (R0 x R1), queries on that grid subsampled by ``stride``. The bias of
    query (qy, qx) and key (ky, kx) is ``attention_biases[h, |qy - ky| * R1 + |qx - kx|]``: the op owns that
    table ([num_heads, R0 * R1], named by where it is assigned, as timm's ``attn.attention_biases``) and
    gathers it with a fixed index, so ``attention_biases = AttentionBias(4, 14)`` gives a [4, 196, 196] tensor.
    """

    name: ClassVar = "attention_bias"
    symmetry: ClassVar = Pinned("a table gathered at fixed relative positions")
    positional: ClassVar = ("num_heads", "resolution", "stride")
    arity: ClassVar = 0
    family: ClassVar = "mixing"
    num_heads: PositiveInt
    resolution: int | tuple[int, int]
    stride: PositiveInt = 1

    @field_validator("resolution")
    @classmethod
    def _grid(cls, v: int | tuple[int, int]) -> int | tuple[int, int]:
        sides = (v,) if isinstance(v, int) else v
        if len(sides) not in (1, 2) or any(s <= 0 for s in sides):
            raise ValueError(f"must be a positive size or a pair of them, got {v}")
        return v

    def grid(self) -> tuple[int, int]:
        """The key grid (R0, R1)."""
        return (self.resolution, self.resolution) if isinstance(self.resolution, int) else self.resolution

    def query_grid(self) -> tuple[int, int]:
        """The query grid: every ``stride``-th position of the key grid in each direction."""
        r0, r1 = self.grid()
        return -(-r0 // self.stride), -(-r1 // self.stride)

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if inputs:
            raise OpError(f"attention_bias takes no tensor inputs, got {len(inputs)}")
        (q0, q1), (r0, r1) = self.query_grid(), self.grid()
        return [TensorType(shape=(self.num_heads, q0 * q1, r0 * r1))]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        r0, r1 = self.grid()
        return {"": ParamSpec((self.num_heads, r0 * r1), "zeros", axis="token")}

    def index(self) -> list[list[int]]:
        """The gather index [Nq, Nk] into the table's second axis (a readable reference for the lowerings)."""
        (r0, r1), s = self.grid(), self.stride
        queries = [(y, x) for y in range(0, r0, s) for x in range(0, r1, s)]
        keys = [(y, x) for y in range(r0) for x in range(r1)]
        return [[abs(qy - ky) * r1 + abs(qx - kx) for ky, kx in keys] for qy, qx in queries]

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        return Cost(macs=0, activations=outputs[0].numel())


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
            raise OpError("normalize needs at least one axis")
        axes = tuple(sorted(norm_axis(self, d, rank) for d in dims))
        if len(set(axes)) != len(axes):
            raise OpError(f"normalize: axis repeated in dim={self.dim}")
        return axes

    def resolve(self, inputs: list[TensorType]) -> Normalize:
        axes = self.axes(inputs[0].rank)
        return self.model_copy(update={"dim": axes[0] if len(axes) == 1 else axes})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        expect_float(self, inputs[0])
        self.axes(inputs[0].rank)
        return [inputs[0]]


OPS = (AttentionBias, Normalize)
