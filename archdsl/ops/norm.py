"""Normalisation layers: batch, layer (channels-last and channels-first), group, RMS, instance, LRN."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import field_validator

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.base import CHANNEL, OpDef, ParamSpec, PositiveInt, Trait, expect_rank
from archdsl.symmetry.contract import ChannelStats, FeatureNorm, Pinned


def channels(op: OpDef, x: TensorType) -> int:
    """The known channel count (axis 1)."""
    c = x.shape[1] if x.rank > 1 else None
    if not isinstance(c, int):
        raise OpError(f"{op.name} needs a known channel count on axis 1, got {x}",
                      "declare the channel axis (axis 1) of the input with a number or a parameter bound to one; "
                      "for channels-last [N, ..., C] use LayerNorm")
    return c


def affine_params(shape: tuple[int, ...], axis: str, weight: bool = True, bias: bool = True) -> dict[str, ParamSpec]:
    """The usual ``weight`` (ones) and ``bias`` (zeros) of a normalisation layer."""
    out: dict[str, ParamSpec] = {}
    layout = (CHANNEL,) * len(shape) if axis == "channel" else ()
    if weight:
        out["weight"] = ParamSpec(shape, "ones", axis=axis, layout=layout)
    if bias:
        out["bias"] = ParamSpec(shape, "zeros", axis=axis, layout=layout)
    return out


def running_stats(c: int) -> dict[str, ParamSpec]:
    """BatchNorm-style buffers: running mean and variance and the batch counter."""
    return {"running_mean": ParamSpec((c,), "zeros", buffer=True, axis="channel", layout=(CHANNEL,)),
            "running_var": ParamSpec((c,), "ones", buffer=True, axis="channel", layout=(CHANNEL,)),
            "num_batches_tracked": ParamSpec((), "zeros", dtype="int64", buffer=True)}


class Norm(OpDef):
    """Base of normalisation layers: shape preserving, positive eps."""

    family: ClassVar = "norm"

    @field_validator("eps", check_fields=False)
    @classmethod
    def _eps(cls, v: float | None) -> float | None:
        if v is not None and v < 0:
            raise ValueError(f"eps must not be negative, got {v}")
        return v


class ChannelStatsNorm(Norm):
    """Base of norms over per-channel (axis 1) statistics, with optional affine and running stats."""

    ranks: ClassVar[tuple[int, ...]] = (4,)
    rank_hint: ClassVar = ("BatchNorm1d takes [N, C] or [N, C, L], BatchNorm2d and InstanceNorm2d [N, C, H, W], "
                           "BatchNorm3d [N, C, D, H, W]: pick the one of your input's rank")
    symmetry: ClassVar = ChannelStats()        # eval mode: running statistics absorb a per-channel scale
    traits: ClassVar = frozenset({Trait.TRAIN_EVAL, Trait.CHANNEL_AFFINE})
    if TYPE_CHECKING:                          # fields each subclass declares with its own defaults
        eps: float
        affine: bool
        track_running_stats: bool

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        expect_rank(self, inputs[0], *self.ranks)
        channels(self, inputs[0])
        return [inputs[0]]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        c = channels(self, inputs[0])
        out = affine_params((c,), "channel") if self.affine else {}
        if self.track_running_stats:
            out.update(running_stats(c))
        return out

    def eval_affine_axis(self, x: TensorType) -> int | None:
        """Axis 1 when eval mode normalises with running statistics (a per-channel affine map), else None."""
        return 1 if self.track_running_stats else None

    def eval_affine(self, params: dict, x: TensorType) -> tuple[int, object, object]:
        """scale = weight / sqrt(running_var + eps), shift = bias - running_mean * scale."""
        if self.eval_affine_axis(x) is None:
            raise OpError(f"{self.name} without running statistics normalises by batch statistics in eval mode",
                          "keep track_running_stats=true for an op that folds into a conv in eval mode")
        scale = (params["running_var"] + self.eps).rsqrt()
        if "weight" in params:
            scale = scale * params["weight"]
        shift = -params["running_mean"] * scale
        if "bias" in params:
            shift = shift + params["bias"]
        return 1, scale, shift


class BatchNormNd(ChannelStatsNorm):
    """Per-channel (axis 1) batch normalisation; affine per channel in eval mode."""

    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    track_running_stats: bool = True


class BatchNorm1d(BatchNormNd):
    """BatchNorm over [N, C] or [N, C, L]."""

    name: ClassVar = "batch_norm1d"
    ranks: ClassVar = (2, 3)


class BatchNorm2d(BatchNormNd):
    """BatchNorm over [N, C, H, W]."""

    name: ClassVar = "batch_norm2d"
    ranks: ClassVar = (4,)


class BatchNorm3d(BatchNormNd):
    """BatchNorm over [N, C, D, H, W]."""

    name: ClassVar = "batch_norm3d"
    ranks: ClassVar = (5,)


class LastDimsNorm(Norm):
    """Base of norms over the trailing ``normalized_shape`` axes; the shape defaults to the last axis."""

    positional: ClassVar = ("normalized_shape",)
    symmetry: ClassVar = FeatureNorm()
    normalized_shape: int | tuple[int, ...] | None = None
    elementwise_affine: bool = True

    @field_validator("normalized_shape")
    @classmethod
    def _shape(cls, v: int | tuple[int, ...] | None) -> int | tuple[int, ...] | None:
        dims = () if v is None else (v,) if isinstance(v, int) else v
        if any(d <= 0 for d in dims) or v == ():
            raise ValueError(f"must be a positive size or a non-empty tuple of them, got {v}")
        return v

    def shape(self, x: TensorType) -> tuple[int, ...]:
        """The normalised trailing shape, checked against ``x``."""
        want = (self.normalized_shape,) if isinstance(self.normalized_shape, int) else self.normalized_shape
        if want is None:
            if x.rank == 0 or not isinstance(x.shape[-1], int):
                raise OpError(f"{self.name} needs a known last axis to normalise over, got {x}",
                              hint="give normalized_shape explicitly")
            return (x.shape[-1],)
        if x.rank < len(want) or tuple(x.shape[x.rank - len(want):]) != tuple(want):
            raise OpError(f"{self.name}: input {x} does not end with normalized_shape {list(want)}",
                          "normalized_shape names the input's trailing axes: give their sizes, or leave it out "
                          "to normalise the last axis; for [N, C, H, W] use GroupNorm(1, C) or permute first")
        return tuple(want)

    def resolve(self, inputs: list[TensorType]) -> LastDimsNorm:
        return self.model_copy(update={"normalized_shape": self.shape(inputs[0])})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        self.shape(inputs[0])
        return [inputs[0]]


class LayerNorm(LastDimsNorm):
    """(x - mean) / sqrt(var + eps) * weight + bias over the trailing ``normalized_shape`` axes."""

    name: ClassVar = "layer_norm"
    eps: float = 1e-5
    bias: bool = True

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        if not self.elementwise_affine:
            return {}
        return affine_params(self.shape(inputs[0]), "feature", bias=self.bias)


class RMSNorm(LastDimsNorm):
    """x / sqrt(mean(x**2) + eps) * weight over the trailing axes; eps None = finfo(dtype).eps (PyTorch)."""

    name: ClassVar = "rms_norm"
    eps: float | None = None

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        if not self.elementwise_affine:
            return {}
        return affine_params(self.shape(inputs[0]), "feature", bias=False)


class LayerNorm2d(Norm):
    """LayerNorm over the channel axis of a channels-first [N, C, *spatial] tensor (timm, ConvNeXt)."""

    name: ClassVar = "layer_norm2d"
    symmetry: ClassVar = FeatureNorm(axis=1)
    eps: float = 1e-6
    elementwise_affine: bool = True
    bias: bool = True

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if inputs[0].rank < 3:
            raise OpError(f"{self.name} expects a channels-first tensor [N, C, ...] of rank 3 or more, got {inputs[0]}",
                          hint="use LayerNorm for channels-last tensors")
        channels(self, inputs[0])
        return [inputs[0]]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        if not self.elementwise_affine:
            return {}
        return affine_params((channels(self, inputs[0]),), "channel", bias=self.bias)


class GroupNorm(Norm):
    """Normalise each of ``num_groups`` channel groups of [N, C, ...]; per-channel affine."""

    name: ClassVar = "group_norm"
    symmetry: ClassVar = FeatureNorm(axis=1, groups="num_groups")
    positional: ClassVar = ("num_groups",)
    num_groups: PositiveInt
    eps: float = 1e-5
    affine: bool = True

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if inputs[0].rank < 2:
            raise OpError(f"{self.name} expects [N, C, ...], got {inputs[0]}",
                          "give it a batch and a channel axis: reshape the input to [N, C, ...] first")
        c = channels(self, inputs[0])
        if c % self.num_groups:
            raise OpError(f"{self.name}: {c} channels are not divisible by num_groups={self.num_groups}",
                          f"choose num_groups dividing {c} (1 normalises all channels together, {c} each alone)")
        return [inputs[0]]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        return affine_params((channels(self, inputs[0]),), "channel") if self.affine else {}


class InstanceNorm2d(ChannelStatsNorm):
    """Per-sample, per-channel normalisation of [N, C, H, W]; no affine and no running stats by default.

    Train/eval dependent only with ``track_running_stats`` (the trait is declared for the class).
    """

    name: ClassVar = "instance_norm2d"
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = False
    track_running_stats: bool = False


class LocalResponseNorm(Norm):
    """x / (k + alpha/size * sum of x**2 over ``size`` neighbouring channels) ** beta (AlexNet)."""

    name: ClassVar = "local_response_norm"
    symmetry: ClassVar = Pinned("local response norm mixes neighbouring channels")
    positional: ClassVar = ("size",)
    size: PositiveInt
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        if inputs[0].rank < 3:
            raise OpError(f"{self.name} expects [N, C, ...] of rank 3 or more, got {inputs[0]}",
                          "it normalises across channels at each position: unsqueeze a [N, C] input to [N, C, 1]")
        return [inputs[0]]


OPS = (BatchNorm1d, BatchNorm2d, BatchNorm3d, LayerNorm, LayerNorm2d, GroupNorm, RMSNorm, InstanceNorm2d,
       LocalResponseNorm)
