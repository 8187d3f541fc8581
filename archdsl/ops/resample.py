"""Resampling and data movement over spatial and channel axes: interpolate, pixel (un)shuffle, channel
shuffle, explicit padding."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import ClassVar, Literal

from pydantic import model_validator

from archdsl.errors import OpError
from archdsl.ir.dims import Dim, SymDim
from archdsl.ir.types import DimField, TensorType
from archdsl.ops.base import ConvForm, OpDef, PositiveInt, Trait
from archdsl.ops.conv import check_mode_pads
from archdsl.symmetry.contract import Pinned, Window

_RANKS = {"nearest": (3, 4, 5), "nearest-exact": (3, 4, 5), "area": (3, 4, 5), "linear": (3,), "bilinear": (4,),
          "bicubic": (4,), "trilinear": (5,)}
_ALIGNABLE = ("linear", "bilinear", "bicubic", "trilinear")
MAX_SYMBOLIC_DENOMINATOR = 1024   # floor(H * s) is exact for symbolic H when s = a/b with a small b


def divisible(d: Dim, k: int) -> bool | None:
    """True / False when ``d`` is provably (not) a multiple of ``k``; None when it depends on a symbol."""
    r = d % k
    if isinstance(r, int):
        return r == 0
    return None


def require_divisible(op: str, d: Dim, k: int, what: str, by: str) -> None:
    """Raise OpError unless ``d`` is provably a multiple of ``k`` (``by`` names ``k`` in the message)."""
    ok = divisible(d, k)
    if ok is None:
        raise OpError(f"{op}: {what} {d} must be known to be divisible by {by}", hint="declare the size as a number")
    if not ok:
        raise OpError(f"{op}: {what} {d} is not divisible by {by}",
                      f"make the {what} a multiple of {k} (set it in the layer before), or change "
                      f"{by.split('=')[0].split('**')[0].strip()}")


def scaled(op: str, size: Dim, scale: float) -> Dim:
    """PyTorch's output length ``floor(size * scale)`` (in double precision), symbolic when exact."""
    if isinstance(size, int):
        return math.floor(float(size) * scale)
    frac = Fraction(scale)
    if frac.denominator > MAX_SYMBOLIC_DENOMINATOR:
        raise OpError(f"{op}: scale_factor {scale} on the symbolic size {size} has no exact integer form",
                      hint="use a scale such as 2, 0.5 or 1.5, give size=..., or declare the input size")
    return size * frac.numerator // frac.denominator


def spatial_of(op: OpDef, x: TensorType, least: int = 3) -> int:
    """Number of spatial axes of [N, C, *spatial], checking the rank."""
    if x.rank < least:
        raise OpError(f"{op.name} expects [N, C, ...] of rank {least} or more, got {x}",
                      f"it works on the spatial axes after [N, C]: reshape the input to rank {least} or more first")
    return x.rank - 2


class Upsample(OpDef):
    """Resize the spatial axes of [N, C, *spatial] to ``size`` or by ``scale_factor`` (F.interpolate)."""

    name: ClassVar = "interpolate"
    symmetry: ClassVar = Window()
    positional: ClassVar = ("size", "scale_factor", "mode")
    traits: ClassVar = frozenset({Trait.LINEAR})
    family: ClassVar = "resample"
    size: DimField | tuple[DimField, ...] | None = None    # symbolic sizes are bound from the inputs at run time
    scale_factor: float | tuple[float, ...] | None = None
    mode: Literal["nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area"] = "nearest"
    align_corners: bool | None = None

    @model_validator(mode="after")
    def _check(self) -> Upsample:
        values = self.size if self.size is not None else self.scale_factor
        if values is None or (self.size is None) == (self.scale_factor is None):
            raise ValueError("give exactly one of size and scale_factor")
        if any(not isinstance(v, SymDim) and v <= 0 for v in ((values,) if isinstance(values, int | float | SymDim)
                                                              else values)):
            raise ValueError(f"size and scale_factor must be positive, got {values}")
        if self.align_corners is not None and self.mode not in _ALIGNABLE:
            raise ValueError(f"align_corners only applies to modes {', '.join(_ALIGNABLE)}, not {self.mode!r}")
        return self

    def per_axis(self, value: int | float | SymDim | tuple | None, n: int) -> tuple:
        """Broadcast a size or scale to ``n`` spatial axes."""
        if value is None:
            raise ValueError(f"{self.name} has neither a size nor a scale_factor")
        if isinstance(value, int | float | SymDim):
            return (value,) * n
        if len(value) != n:
            raise OpError(f"{self.name}: {len(value)} values for {n} spatial axes: {value}",
                          f"give one number for all spatial axes, or {n} (one per axis)")
        return tuple(value)

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        if x.rank not in _RANKS[self.mode]:
            want = " or ".join(str(r) for r in _RANKS[self.mode])
            raise OpError(f"{self.name}: mode {self.mode!r} needs a tensor of rank {want}, got {x}",
                          "linear takes [N, C, L], bilinear and bicubic [N, C, H, W], trilinear [N, C, D, H, W]; "
                          "nearest and area take any of them")
        n = x.rank - 2
        if self.size is not None:
            sizes = self.per_axis(self.size, n)
        else:
            sizes = tuple(scaled(self.name, d, s) for d, s in zip(x.shape[2:], self.per_axis(self.scale_factor, n),
                                                                 strict=True))
        if any(isinstance(s, int) and s <= 0 for s in sizes):
            raise OpError(f"{self.name}: scale_factor {self.scale_factor} leaves no output for {x}",
                          "use a larger scale_factor, or give the output size=...")
        return [x.with_shape((*x.shape[:2], *sizes))]


class PixelShuffle(OpDef):
    """[*, C*r*r, H, W] -> [*, C, H*r, W*r] (sub-pixel convolution, ESPCN)."""

    name: ClassVar = "pixel_shuffle"
    symmetry: ClassVar = Pinned("pixel shuffle moves channels into space")
    positional: ClassVar = ("upscale_factor",)
    traits: ClassVar = frozenset({Trait.LINEAR, Trait.SHAPE_ONLY})
    family: ClassVar = "resample"
    upscale_factor: PositiveInt

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x, r = inputs[0], self.upscale_factor
        spatial_of(self, x)
        *lead, c, h, w = x.shape
        require_divisible(self.name, c, r * r, "channel count", f"upscale_factor**2 = {r * r}")
        return [x.with_shape((*lead, c // (r * r), h * r, w * r))]


class PixelUnshuffle(OpDef):
    """[*, C, H*r, W*r] -> [*, C*r*r, H, W]; symbolic H and W must be multiples of r at run time."""

    name: ClassVar = "pixel_unshuffle"
    symmetry: ClassVar = Pinned("pixel unshuffle moves space into channels")
    positional: ClassVar = ("downscale_factor",)
    traits: ClassVar = frozenset({Trait.LINEAR, Trait.SHAPE_ONLY})
    family: ClassVar = "resample"
    downscale_factor: PositiveInt

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x, r = inputs[0], self.downscale_factor
        spatial_of(self, x)
        *lead, c, h, w = x.shape
        if divisible(h, r) is False or divisible(w, r) is False:
            raise OpError(f"{self.name}: height {h} and width {w} must be divisible by downscale_factor={r}",
                          f"pad the input to a multiple of {r}, or declare its size so (where H % {r} == 0)")
        return [x.with_shape((*lead, c * r * r, h // r, w // r))]


class ChannelShuffle(OpDef):
    """Interleave ``groups`` channel groups of [N, C, ...]: channel g*(C/groups)+i moves to i*groups+g."""

    name: ClassVar = "channel_shuffle"
    symmetry: ClassVar = Pinned("channel shuffle interleaves channel groups (a fixed permutation)")
    positional: ClassVar = ("groups",)
    traits: ClassVar = frozenset({Trait.LINEAR, Trait.SHAPE_ONLY})
    family: ClassVar = "resample"
    groups: PositiveInt

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        spatial_of(self, x, least=2)
        require_divisible(self.name, x.shape[1], self.groups, "channel count", f"groups={self.groups}")
        return [x]


class Pad(OpDef):
    """Explicit padding. ``pads`` is in F.pad order, last axis first: (left, right, top, bottom, ...);
    an int pads every axis after the channel axis by that much on both sides."""

    name: ClassVar = "pad"
    symmetry: ClassVar = Window(count=lambda op, t: len(op.per_axis(t)))
    positional: ClassVar = ("pads", "mode", "value")
    traits: ClassVar = frozenset({Trait.AFFINE})
    family: ClassVar = "resample"
    pads: int | tuple[int, ...]
    mode: Literal["constant", "reflect", "replicate", "circular"] = "constant"
    value: float = 0.0

    @model_validator(mode="after")
    def _check(self) -> Pad:
        if isinstance(self.pads, tuple) and (not self.pads or len(self.pads) % 2):
            raise ValueError(f"pads needs (before, after) pairs, last axis first; got {self.pads}")
        flat = (self.pads,) if isinstance(self.pads, int) else self.pads
        if self.mode != "constant" and any(p < 0 for p in flat):
            raise ValueError(f"negative pads (cropping) need mode 'constant', not {self.mode!r}")
        if self.mode != "constant" and self.value != 0:
            raise ValueError(f"mode {self.mode!r} takes no fill value")
        return self

    def flat(self, x: TensorType) -> tuple[int, ...]:
        """Pads in F.pad order for ``x``."""
        if isinstance(self.pads, int):
            return (self.pads,) * 2 * spatial_of(self, x)
        if len(self.pads) > 2 * x.rank:
            raise OpError(f"{self.name}: {len(self.pads)} pads for a tensor of rank {x.rank} ({x})",
                          f"give at most {2 * x.rank} pads: (left, right) for the last axis, then (top, bottom), "
                          "... as F.pad")
        return self.pads

    def per_axis(self, x: TensorType) -> tuple[tuple[int, int], ...]:
        """(before, after) for each padded axis, in axis order (the padded axes are the last ones)."""
        flat = self.flat(x)
        return tuple((flat[2 * i], flat[2 * i + 1]) for i in reversed(range(len(flat) // 2)))

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        pairs = self.per_axis(x)
        k = len(pairs)
        if self.mode != "constant" and (k > 3 or x.rank not in (k + 1, k + 2)):
            raise OpError(f"{self.name}: mode {self.mode!r} must pad every spatial axis of [N, C, *spatial] or "
                          f"[C, *spatial] (1 to 3 axes); got {k} padded axes for {x}",
                          hint="give (before, after) pads for each spatial axis, or use mode 'constant'")
        sizes = x.shape[x.rank - k:]
        check_mode_pads(self.name, self.mode, tuple(sizes), pairs)
        out = tuple(d + a + b for d, (a, b) in zip(sizes, pairs, strict=True))
        if any(isinstance(d, int) and d <= 0 for d in out):
            raise OpError(f"{self.name}: pads {self.flat(x)} leave nothing of {x}",
                          "negative pads crop: crop less than the axis' size")
        return [x.with_shape((*x.shape[:x.rank - k], *out))]

    def conv_form(self, x: TensorType) -> ConvForm | None:
        """An identity 1x1 depthwise convolution that pads, when it pads every spatial axis of [N, C, *spatial]
        with zeros (or reflect/replicate/circular) and crops nothing."""
        pairs = self.per_axis(x)
        c = x.shape[1] if x.rank >= 2 else None
        if len(pairs) != x.rank - 2 or not pairs or not isinstance(c, int) or any(p < 0 for pp in pairs for p in pp):
            return None
        if self.mode == "constant" and self.value != 0:
            return None
        n = len(pairs)
        return ConvForm((1,) * n, (1,) * n, (1,) * n, pairs, c, c, c, "zeros" if self.mode == "constant" else self.mode,
                        None, None, 1.0)


OPS = (Upsample, PixelShuffle, PixelUnshuffle, ChannelShuffle, Pad)
