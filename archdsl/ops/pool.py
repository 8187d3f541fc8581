"""Pooling: max and average windows, adaptive and global pooling."""

from __future__ import annotations

import functools
from typing import ClassVar

from pydantic import field_validator

from archdsl.errors import OpError
from archdsl.ir.dims import Dim
from archdsl.ir.types import TensorType
from archdsl.ops.base import ConvForm, OpDef, Trait, expect_rank
from archdsl.ops.conv import IntOrTuple, expand, out_size
from archdsl.symmetry.contract import Reduction, Window


@functools.lru_cache(maxsize=4096)
def pool_out_size(size: Dim, k: int, s: int, d: int, p: int, ceil: bool) -> Dim:
    """PyTorch's pooled length; exact for symbolic sizes in ceil mode too.

    In ceil mode PyTorch drops a last window that would start in the right padding:
    ``o = ceil((size + 2p - d(k-1) - 1) / s) + 1``, minus one when ``(o-1) s >= size + p``. That equals
    ``floor((size + p - 1 + min(0, p + s - 1 - d(k-1))) / s) + 1``, a form with no case split on ``size``.
    """
    if not ceil:
        return out_size(size, k, s, d, p, p)
    return (size + p - 1 + min(0, p + s - 1 - d * (k - 1))) // s + 1


def _positive(v: IntOrTuple | None) -> IntOrTuple | None:
    if v is not None and any(x <= 0 for x in ((v,) if isinstance(v, int) else v)):
        raise ValueError(f"must be positive, got {v}")
    return v


class PoolNd(OpDef):
    """Sliding-window pooling over ``spatial`` trailing dims; stride defaults to the kernel size."""

    spatial: ClassVar[int] = 2
    positional: ClassVar = ("kernel_size", "stride", "padding")
    symmetry: ClassVar = Window()
    family: ClassVar = "pool"
    rank_hint: ClassVar = ("the 1d pools take [N, C, L] (or [C, L]), the 2d pools [N, C, H, W] (or [C, H, W]): "
                           "pick the one of your input's rank, or reshape the input")
    kernel_size: IntOrTuple
    stride: IntOrTuple | None = None
    padding: IntOrTuple = 0
    ceil_mode: bool = False

    @field_validator("kernel_size", "stride")
    @classmethod
    def _sizes(cls, v: IntOrTuple | None) -> IntOrTuple | None:
        return _positive(v)

    def dilations(self) -> tuple[int, ...]:
        """Dilation per spatial dim (1 unless the op has a ``dilation`` attribute)."""
        return (1,) * self.spatial

    def window(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Kernel, stride, padding and dilation per spatial dim."""
        n = self.spatial
        k = expand(self.kernel_size, n, "kernel_size", self.name)
        s = expand(self.stride if self.stride is not None else self.kernel_size, n, "stride", self.name)
        p = expand(self.padding, n, "padding", self.name)
        if any(pp < 0 or pp * 2 > kk for pp, kk in zip(p, k, strict=True)):
            raise OpError(f"{self.name}: padding {p} must be between 0 and half the kernel size {k}",
                          "use padding <= kernel_size // 2 (PyTorch's limit), or pad(...) the input before pooling")
        return k, s, p, self.dilations()

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        expect_rank(self, x, self.spatial + 2, self.spatial + 1)
        k, s, p, d = self.window()
        lead = x.rank - self.spatial
        sizes = []
        for i in range(self.spatial):
            o = pool_out_size(x.shape[lead + i], k[i], s[i], d[i], p[i], self.ceil_mode)
            if isinstance(o, int) and o <= 0:
                raise OpError(f"{self.name}: input {x} is too small for kernel {k} with padding {p}",
                              "use a smaller kernel, more padding or ceil_mode=true, or an adaptive pool "
                              "(AdaptiveAvgPool2d(1)) that fits any size")
            sizes.append(o)
        return [x.with_shape((*x.shape[:lead], *sizes))]


class MaxPoolNd(PoolNd):
    """Max over windows; ``dilation`` spaces the window's taps."""

    traits: ClassVar = frozenset({Trait.HOMOGENEOUS})
    dilation: IntOrTuple = 1

    @field_validator("dilation")
    @classmethod
    def _dilation(cls, v: IntOrTuple) -> IntOrTuple:
        _positive(v)
        return v

    def dilations(self) -> tuple[int, ...]:
        return expand(self.dilation, self.spatial, "dilation", self.name)


class MaxPool1d(MaxPoolNd):
    """Max over length-k windows of [N, C, L]."""

    name: ClassVar = "max_pool1d"
    spatial: ClassVar = 1


class MaxPool2d(MaxPoolNd):
    """Max over k x k windows of [N, C, H, W]."""

    name: ClassVar = "max_pool2d"
    spatial: ClassVar = 2


class AvgPoolNd(PoolNd):
    """Mean over windows; ``count_include_pad`` counts zero padding in the divisor."""

    traits: ClassVar = frozenset({Trait.LINEAR})
    count_include_pad: bool = True

    def conv_form(self, x: TensorType) -> ConvForm | None:
        """A depthwise convolution with a constant 1/window kernel, when every window has the full divisor.

        Exact only with ``count_include_pad`` (or no padding) and without ``ceil_mode`` (whose last
        window may be partial); a [C, *spatial] input without a batch axis is not channels-first.
        """
        k, s, p, d = self.window()
        if x.rank != self.spatial + 2 or self.ceil_mode or (any(p) and not self.count_include_pad):
            return None
        c = x.shape[1]
        if not isinstance(c, int):
            return None
        window = 1
        for kk in k:
            window *= kk
        return ConvForm(k, s, d, tuple((pp, pp) for pp in p), c, c, c, "zeros", None, None, 1.0 / window)


class AvgPool1d(AvgPoolNd):
    """Mean over length-k windows of [N, C, L]."""

    name: ClassVar = "avg_pool1d"
    spatial: ClassVar = 1


class AvgPool2d(AvgPoolNd):
    """Mean over k x k windows of [N, C, H, W]."""

    name: ClassVar = "avg_pool2d"
    spatial: ClassVar = 2


class AdaptivePoolNd(OpDef):
    """Pooling to a fixed output size (PyTorch's adaptive bins); ``none`` in output_size keeps that dim."""

    spatial: ClassVar[int] = 2
    positional: ClassVar = ("output_size",)
    symmetry: ClassVar = Window()
    family: ClassVar = "pool"
    rank_hint: ClassVar = ("the 1d pools take [N, C, L] (or [C, L]), the 2d pools [N, C, H, W] (or [C, H, W]): "
                           "pick the one of your input's rank, or reshape the input")
    output_size: int | tuple[int | None, ...]

    @field_validator("output_size")
    @classmethod
    def _size(cls, v: int | tuple[int | None, ...]) -> int | tuple[int | None, ...]:
        if any(x is not None and x <= 0 for x in ((v,) if isinstance(v, int) else v)):
            raise ValueError(f"must be positive, got {v}")
        return v

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        expect_rank(self, x, self.spatial + 2, self.spatial + 1)
        want = expand(self.output_size, self.spatial, "output_size", self.name)
        lead = x.rank - self.spatial
        sizes = [x.shape[lead + i] if o is None else o for i, o in enumerate(want)]
        return [x.with_shape((*x.shape[:lead], *sizes))]


class AdaptiveAvgPool1d(AdaptivePoolNd):
    """Adaptive average pooling of [N, C, L] to [N, C, output_size]."""

    name: ClassVar = "adaptive_avg_pool1d"
    spatial: ClassVar = 1
    traits: ClassVar = frozenset({Trait.LINEAR})


class AdaptiveAvgPool2d(AdaptivePoolNd):
    """Adaptive average pooling of [N, C, H, W] to [N, C, *output_size]."""

    name: ClassVar = "adaptive_avg_pool2d"
    spatial: ClassVar = 2
    traits: ClassVar = frozenset({Trait.LINEAR})


class AdaptiveMaxPool1d(AdaptivePoolNd):
    """Adaptive max pooling of [N, C, L] to [N, C, output_size]."""

    name: ClassVar = "adaptive_max_pool1d"
    spatial: ClassVar = 1
    traits: ClassVar = frozenset({Trait.HOMOGENEOUS})


class AdaptiveMaxPool2d(AdaptivePoolNd):
    """Adaptive max pooling of [N, C, H, W] to [N, C, *output_size]."""

    name: ClassVar = "adaptive_max_pool2d"
    spatial: ClassVar = 2
    traits: ClassVar = frozenset({Trait.HOMOGENEOUS})


class GlobalPool(OpDef):
    """Reduce every axis after the channel axis of [N, C, ...]: [N, C] (or [N, C, 1, ...] with keepdim)."""

    symmetry: ClassVar = Reduction(axes=lambda op, t: op.axes(t))
    family: ClassVar = "pool"
    keepdim: bool = False

    def axes(self, x: TensorType) -> tuple[int, ...]:
        """The reduced (spatial) axes."""
        if x.rank < 3:
            raise OpError(f"{self.name} expects [N, C, ...] with at least one spatial axis, got {x}",
                          "the input is already pooled: drop this op, or reshape it to [N, C, L]")
        return tuple(range(2, x.rank))

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        axes = self.axes(x)
        rest = (1,) * len(axes) if self.keepdim else ()
        return [x.with_shape((*x.shape[:2], *rest))]


class GlobalAvgPool(GlobalPool):
    """Mean over all spatial axes."""

    name: ClassVar = "global_avg_pool"
    traits: ClassVar = frozenset({Trait.LINEAR})


class GlobalMaxPool(GlobalPool):
    """Max over all spatial axes."""

    name: ClassVar = "global_max_pool"
    traits: ClassVar = frozenset({Trait.HOMOGENEOUS})


OPS = (MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d, AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d,
       AdaptiveMaxPool2d, GlobalAvgPool, GlobalMaxPool)
