"""Pooling: max and average windows, adaptive and global pooling."""

from __future__ import annotations

from typing import ClassVar

from archdsl.errors import OpError
from archdsl.ir.types import TensorType
from archdsl.ops.base import OpDef, Trait, expect_rank
from archdsl.ops.conv import IntOrTuple, expand, out_size


class PoolNd(OpDef):
    """Sliding-window pooling over ``spatial`` trailing dims; stride defaults to the kernel size."""

    spatial: ClassVar[int] = 2
    positional: ClassVar = ("kernel_size", "stride", "padding")
    family: ClassVar = "pool"
    kernel_size: IntOrTuple
    stride: IntOrTuple | None = None
    padding: IntOrTuple = 0
    ceil_mode: bool = False

    def window(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Kernel, stride, padding and dilation per spatial dim."""
        n = self.spatial
        k = expand(self.kernel_size, n, "kernel_size", self.name)
        s = expand(self.stride if self.stride is not None else self.kernel_size, n, "stride", self.name)
        p = expand(self.padding, n, "padding", self.name)
        if any(pp * 2 > kk for pp, kk in zip(p, k)):
            raise OpError(f"{self.name}: padding {p} must be at most half the kernel size {k}")
        return k, s, p, (1,) * n

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        expect_rank(self, x, self.spatial + 2, self.spatial + 1)
        k, s, p, d = self.window()
        lead = x.rank - self.spatial
        sizes = []
        for i in range(self.spatial):
            size = x.shape[lead + i]
            o = out_size(size, k[i], s[i], d[i], p[i], p[i], self.ceil_mode)
            if self.ceil_mode and isinstance(o, int) and isinstance(size, int) and (o - 1) * s[i] >= size + p[i]:
                o -= 1   # PyTorch: the last window must start inside the input or left padding
            if isinstance(o, int) and o <= 0:
                raise OpError(f"{self.name}: input {x} is too small for kernel {k}")
            sizes.append(o)
        return [x.with_shape((*x.shape[:lead], *sizes))]


class MaxPool2d(PoolNd):
    """Max over k x k windows of [N, C, H, W]."""

    name: ClassVar = "max_pool2d"
    traits: ClassVar = frozenset({Trait.HOMOGENEOUS})


class AvgPool2d(PoolNd):
    """Mean over k x k windows of [N, C, H, W]."""

    name: ClassVar = "avg_pool2d"
    traits: ClassVar = frozenset({Trait.LINEAR})
    count_include_pad: bool = True


class AdaptiveAvgPool2d(OpDef):
    """Average pooling to a fixed output size (PyTorch's adaptive bins)."""

    name: ClassVar = "adaptive_avg_pool2d"
    positional: ClassVar = ("output_size",)
    traits: ClassVar = frozenset({Trait.LINEAR})
    family: ClassVar = "pool"
    output_size: IntOrTuple

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        expect_rank(self, x, 4, 3)
        size = expand(self.output_size, 2, "output_size", self.name)
        return [x.with_shape((*x.shape[:-2], *size))]


OPS = (MaxPool2d, AvgPool2d, AdaptiveAvgPool2d)
