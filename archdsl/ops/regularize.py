"""Regularisers: dropout, stochastic depth (drop path) and LayerScale."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import field_validator

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.base import NOT_AFFINE_HINT, OpDef, ParamSpec, Trait, expect_rank
from archdsl.symmetry.contract import Pointwise

_RANDOM = frozenset({Trait.TRAIN_EVAL, Trait.STOCHASTIC, Trait.EVAL_IDENTITY, Trait.CHANNEL_AFFINE})


class Dropping(OpDef):
    """Base of train-only random ops: identity in eval mode; ``p`` is the drop probability."""

    positional: ClassVar[tuple[str, ...]] = ("p",)
    traits: ClassVar = _RANDOM
    symmetry: ClassVar = Pointwise(kind="any")  # the identity in eval mode
    family: ClassVar = "regularize"
    p: float = 0.5

    @field_validator("p")
    @classmethod
    def _probability(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"a drop probability must be between 0 and 1, got {v}")
        return v

    def eval_affine_axis(self, x: TensorType) -> int | None:
        """The identity in eval mode: a uniform affine map (scale 1, shift 0)."""
        return min(1, max(x.rank - 1, 0))

    def eval_affine(self, params: dict, x: TensorType) -> tuple[int, object, object]:
        """(axis, None, None): scale 1, shift 0."""
        axis = self.eval_affine_axis(x)
        if axis is None:
            raise OpError(f"{self.name} is not a channel-affine map of {x}", NOT_AFFINE_HINT)
        return axis, None, None

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        return [inputs[0]]


class Dropout(Dropping):
    """Zero each element with probability p in training and scale survivors by 1/(1-p)."""

    name: ClassVar = "dropout"


class Dropout2d(Dropping):
    """Zero whole channels of [N, C, H, W] with probability p in training; survivors scaled by 1/(1-p)."""

    name: ClassVar = "dropout2d"
    rank_hint: ClassVar = "dropout2d zeroes channels of [N, C, H, W]; for other ranks use dropout"

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        expect_rank(self, inputs[0], 4)
        return [inputs[0]]


class StochasticDepth(Dropping):
    """Drop a residual branch (torchvision.ops.StochasticDepth): per sample ('row') or per batch ('batch').

    Training: kept with probability 1-p and scaled by 1/(1-p); eval: the identity.
    """

    name: ClassVar = "stochastic_depth"
    positional: ClassVar = ("p", "mode")
    p: float
    mode: Literal["row", "batch"] = "row"

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if inputs[0].rank == 0:
            raise OpError(f"{self.name} needs a batch axis, got a scalar",
                          "it drops whole samples of a batch: apply it to the [N, ...] residual branch")
        return [inputs[0]]


class LayerScale(OpDef):
    """x * gamma with a learned per-channel ``gamma`` (CaiT, ConvNeXt); gamma starts at ``init_value``.

    ``dim=-1`` scales the last axis (timm LayerScale, channels-last); ``dim=1`` the channel axis of
    [N, C, ...] (timm LayerScale2d).
    """

    name: ClassVar = "layer_scale"
    symmetry: ClassVar = Pointwise(params=(("gamma", "dim"),))
    positional: ClassVar = ("init_value",)
    traits: ClassVar = frozenset({Trait.LINEAR, Trait.CHANNEL_AFFINE})
    family: ClassVar = "regularize"
    init_value: float = 1e-5
    dim: Literal[-1, 1] = -1

    def channels(self, x: TensorType) -> int:
        """The known size of the scaled axis."""
        if x.rank < (2 if self.dim == 1 else 1):
            raise OpError(f"{self.name}: dim={self.dim} does not exist in {x}",
                          "dim=1 scales the channels of [N, C, ...]; use dim=-1 for a vector of features")
        c = x.shape[self.dim]
        if not isinstance(c, int):
            raise OpError(f"{self.name} needs a known size on axis {self.dim}, got {x}",
                          f"declare axis {self.dim} of the input with a number or a parameter bound to one")
        return c

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        self.channels(inputs[0])
        return [inputs[0]]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        axis = "channel" if self.dim == 1 else "feature"
        return {"gamma": ParamSpec((self.channels(inputs[0]),), f"constant(value={self.init_value!r})", axis=axis,
                                   layout=("channel",))}

    def eval_affine_axis(self, x: TensorType) -> int | None:
        """The scaled axis (always a per-channel scale)."""
        return self.dim % x.rank

    def eval_affine(self, params: dict, x: TensorType) -> tuple[int, object, object]:
        """scale = gamma, no shift."""
        return self.dim % x.rank, params["gamma"], None


OPS = (Dropout, Dropout2d, StochasticDepth, LayerScale)
