"""Convolutions: Conv1d/2d/3d and ConvTranspose2d, with explicit per-side padding."""

from __future__ import annotations

import functools
from typing import ClassVar, Literal, overload

from pydantic import field_validator

from archdsl.errors import OpError
from archdsl.ir.dims import Dim
from archdsl.ir.types import TensorType
from archdsl.ops.base import IN, OUT, SPATIAL, ConvForm, Cost, OpDef, ParamSpec, PositiveInt, Trait, expect_rank
from archdsl.symmetry.contract import Dense

IntOrTuple = int | tuple[int, ...]
# padding: int, per-dim ints, per-dim (before, after) pairs, or 'same' / 'valid' before resolution.
Padding = int | str | tuple[int, ...] | tuple[tuple[int, int], ...]


@overload
def expand(value: IntOrTuple, n: int, what: str, op: str) -> tuple[int, ...]: ...
@overload
def expand(value: int | tuple[int | None, ...], n: int, what: str, op: str) -> tuple[int | None, ...]: ...
def expand(value: int | tuple[int | None, ...], n: int, what: str, op: str) -> tuple[int | None, ...]:
    """Broadcast an int to ``n`` spatial dims; check a tuple has ``n`` entries."""
    if isinstance(value, int):
        return (value,) * n
    if len(value) != n:
        raise OpError(f"{op}: {what} needs {n} values, got {len(value)}",
                      f"give one int for every spatial axis, or a tuple of {n} (one per spatial axis)")
    return tuple(value)


@functools.lru_cache(maxsize=4096)
def out_size(size: Dim, k: int, s: int, d: int, before: int, after: int, ceil: bool = False) -> Dim:
    """Output length of a sliding window: floor((size + pads - d*(k-1) - 1) / s) + 1.

    Cached: deep CNNs apply the same window to the same symbolic size hundreds of times.
    """
    span = size + before + after - d * (k - 1) - 1
    return (span + (s - 1 if ceil else 0)) // s + 1


def resolve_padding(pad: Padding, k: tuple[int, ...], s: tuple[int, ...], d: tuple[int, ...],
                    sizes: tuple[Dim, ...], op: str) -> tuple[tuple[int, int], ...]:
    """Explicit (before, after) pads per spatial dim; 'same' follows PyTorch (extra pad after)."""
    n = len(k)
    if pad == "valid":
        return ((0, 0),) * n
    if pad == "same":
        pads = []
        for i in range(n):
            if s[i] == 1:
                total = d[i] * (k[i] - 1)
            elif isinstance(size := sizes[i], int):
                out = -(-size // s[i])
                total = max(0, (out - 1) * s[i] + d[i] * (k[i] - 1) + 1 - size)
            else:
                raise OpError(f"{op}: padding='same' with stride {s[i]} needs a known input size, "
                              f"got {sizes[i]}", "give explicit integer padding (k // 2 for odd kernels), or "
                              "declare the input size as a multiple of the stride (where H % 2 == 0)")
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    if isinstance(pad, str):
        raise OpError(f"{op}: padding must be an int, a tuple, 'same' or 'valid', got {pad!r}",
                      "write padding=1, padding=(1, 2), padding='same' or padding='valid'")
    if isinstance(pad, int):
        return ((pad, pad),) * n
    ints = [p for p in pad if isinstance(p, int)]
    if len(ints) == len(pad):
        if len(pad) == n:
            return tuple((p, p) for p in ints)
        if len(pad) == 2 * n:   # (before0, after0, before1, after1, ...)
            return tuple((ints[2 * i], ints[2 * i + 1]) for i in range(n))
    pairs = [p for p in pad if isinstance(p, tuple) and len(p) == 2]
    if len(pad) == n and len(pairs) == len(pad):
        return tuple((int(a), int(b)) for a, b in pairs)
    raise OpError(f"{op}: cannot read padding {pad!r} for {n} spatial dims",
                  f"give one int, {n} ints (one per spatial axis), {2 * n} ints (before, after per axis) or "
                  f"{n} (before, after) pairs")


def check_mode_pads(op: str, mode: str, sizes: tuple[Dim, ...], pads: tuple[tuple[int, int], ...]) -> None:
    """PyTorch's limits on non-zero padding modes: reflect pads < size, circular pads <= size (static sizes)."""
    for size, (before, after) in zip(sizes, pads, strict=True):
        if not isinstance(size, int):
            continue
        if mode == "reflect" and max(before, after) >= size:
            raise OpError(f"{op}: reflect padding {(before, after)} must be smaller than the input size {size}",
                          "use less padding, padding_mode='replicate', or a larger input")
        if mode == "circular" and max(before, after) > size:
            raise OpError(f"{op}: circular padding {(before, after)} must not exceed the input size {size}",
                          "use less padding or a larger input")


class ConvNd(OpDef):
    """Cross-correlation over ``spatial`` trailing dims of ``[N, C, *spatial]``; weight [O, C/g, *k]."""

    spatial: ClassVar[int] = 2
    positional: ClassVar = ("out_channels", "kernel_size")
    traits: ClassVar = frozenset({Trait.AFFINE})
    family: ClassVar = "conv"
    rank_hint: ClassVar = ("Conv1d takes [N, C, L], Conv2d [N, C, H, W], Conv3d [N, C, D, H, W]: pick the one of "
                           "your input's rank, or reshape/unsqueeze the input (a [C, H, W] image needs a batch axis)")
    symmetry: ClassVar = Dense(in_axis=1, out_axis=1, spatial=True)   # groups: block-structured

    out_channels: PositiveInt
    kernel_size: IntOrTuple
    stride: IntOrTuple = 1
    padding: Padding = 0
    dilation: IntOrTuple = 1
    groups: PositiveInt = 1
    bias: bool = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"

    @field_validator("kernel_size", "stride", "dilation")
    @classmethod
    def _positive_sizes(cls, v: IntOrTuple) -> IntOrTuple:
        if any(x <= 0 for x in ((v,) if isinstance(v, int) else v)):
            raise ValueError(f"must be positive, got {v}")
        return v

    @field_validator("padding")
    @classmethod
    def _padding(cls, v: Padding) -> Padding:
        if isinstance(v, str) and v not in ("same", "valid"):
            raise ValueError(f"must be an int, a tuple, 'same' or 'valid', got {v!r}")
        flat = () if isinstance(v, str) else (v,) if isinstance(v, int) else \
            tuple(x for p in v for x in (p if isinstance(p, tuple) else (p,)))
        if any(x < 0 for x in flat):
            raise ValueError(f"must not be negative, got {v}")
        return v

    def geometry(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Kernel, stride and dilation, one entry per spatial dim."""
        n = self.spatial
        return (expand(self.kernel_size, n, "kernel_size", self.name), expand(self.stride, n, "stride", self.name),
                expand(self.dilation, n, "dilation", self.name))

    def pads(self) -> tuple[tuple[int, int], ...]:
        """Explicit (before, after) pads; valid after :meth:`resolve`."""
        k, s, d = self.geometry()
        return resolve_padding(self.padding, k, s, d, (0,) * self.spatial, self.name)

    def resolve(self, inputs: list[TensorType]) -> ConvNd:
        expect_rank(self, inputs[0], self.spatial + 2)
        k, s, d = self.geometry()
        pads = resolve_padding(self.padding, k, s, d, tuple(inputs[0].shape[2:]), self.name)
        return self.model_copy(update={"kernel_size": k, "stride": s, "dilation": d, "padding": pads})

    def in_channels(self, x: TensorType) -> int:
        """Input channels, checked against groups."""
        c = x.shape[1]
        if not isinstance(c, int):
            raise OpError(f"{self.name} needs a known channel count, got {c}",
                          "declare the channel axis of the input with a number ([N, 3, H, W]) or a parameter "
                          "bound to one")
        if c % self.groups or self.out_channels % self.groups:
            raise OpError(f"{self.name}: in_channels={c} and out_channels={self.out_channels} must both be "
                          f"divisible by groups={self.groups}",
                          "choose groups dividing both channel counts (groups=in_channels makes a depthwise conv)")
        return c

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        expect_rank(self, x, self.spatial + 2)
        self.in_channels(x)
        k, s, d = self.geometry()
        check_mode_pads(self.name, self.padding_mode, tuple(x.shape[2:]), self.pads())
        sizes = []
        for i, (before, after) in enumerate(self.pads()):
            size = out_size(x.shape[2 + i], k[i], s[i], d[i], before, after)
            if isinstance(size, int) and size <= 0:
                raise OpError(f"{self.name}: input {x} is too small for kernel {k} with padding {self.pads()}",
                              "use a larger input, more padding (padding='same'), or a smaller kernel or dilation")
            sizes.append(size)
        return [x.with_shape((x.shape[0], self.out_channels, *sizes))]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        c = self.in_channels(inputs[0])
        k, _, _ = self.geometry()
        fan_in = c // self.groups
        for kk in k:
            fan_in *= kk
        out = {"weight": ParamSpec((self.out_channels, c // self.groups, *k), "kaiming_uniform(a=sqrt(5))",
                                   fan_in=fan_in, layout=(OUT, IN, *(SPATIAL,) * len(k)), groups=self.groups)}
        if self.bias:
            out["bias"] = ParamSpec((self.out_channels,), "uniform(fan_in)", axis="channel", fan_in=fan_in,
                                    layout=(OUT,))
        return out

    def conv_form(self, x: TensorType) -> ConvForm | None:
        """Itself (valid after :meth:`resolve`)."""
        k, s, d = self.geometry()
        return ConvForm(k, s, d, self.pads(), self.groups, self.in_channels(x), self.out_channels, self.padding_mode,
                        "weight", "bias" if self.bias else None)

    def output_channel_axis(self, x: TensorType) -> int | None:
        """Axis 1 of [N, C, *spatial]."""
        return 1

    def input_channel_axis(self, x: TensorType) -> int | None:
        """Axis 1 of [N, C, *spatial]."""
        return 1

    def with_bias(self) -> ConvNd:
        """The same convolution with a bias."""
        return self.model_copy(update={"bias": True})

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        k, _, _ = self.geometry()
        per_out = self.in_channels(inputs[0]) // self.groups
        for kk in k:
            per_out *= kk
        return Cost(macs=outputs[0].numel() * per_out, activations=outputs[0].numel())


class Conv1d(ConvNd):
    """1-d convolution over ``[N, C, L]``."""

    name: ClassVar = "conv1d"
    spatial: ClassVar = 1


class Conv2d(ConvNd):
    """2-d convolution over ``[N, C, H, W]``."""

    name: ClassVar = "conv2d"
    spatial: ClassVar = 2


class Conv3d(ConvNd):
    """3-d convolution over ``[N, C, D, H, W]``."""

    name: ClassVar = "conv3d"
    spatial: ClassVar = 3


class ConvTranspose2d(ConvNd):
    """Transposed 2-d convolution; weight layout is (in, out/groups, kh, kw)."""

    name: ClassVar = "conv_transpose2d"
    symmetry: ClassVar = Dense(in_axis=1, out_axis=1, transposed=True, spatial=True)
    output_padding: IntOrTuple = 0

    def resolve(self, inputs: list[TensorType]) -> ConvTranspose2d:
        if self.padding_mode != "zeros":
            raise OpError("conv_transpose2d only supports padding_mode='zeros'",
                          "drop padding_mode, or pad explicitly with pad(..., mode='reflect') before a conv2d")
        if isinstance(self.padding, str):
            raise OpError("conv_transpose2d needs explicit integer padding",
                          "write padding=(kernel_size - stride) // 2 (PyTorch has no 'same' for transposed convs)")
        k, s, d = self.geometry()
        pads = resolve_padding(self.padding, k, s, d, tuple(inputs[0].shape[2:]), self.name)
        if any(a != b for a, b in pads):
            raise OpError("conv_transpose2d needs symmetric padding",
                          "give one int per axis and use output_padding for the one extra row or column")
        op = expand(self.output_padding, 2, "output_padding", self.name)
        return self.model_copy(update={"kernel_size": k, "stride": s, "dilation": d, "padding": pads,
                                       "output_padding": op})

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        expect_rank(self, x, 4)
        self.in_channels(x)
        k, s, d = self.geometry()
        op = expand(self.output_padding, 2, "output_padding", self.name)
        if any(o < 0 or o >= max(si, di) for o, si, di in zip(op, s, d, strict=True)):
            raise OpError(f"{self.name}: output_padding {op} must be smaller than either stride {s} or dilation {d}",
                          "output_padding only picks among the stride's possible output sizes: use 0 or stride - 1")
        sizes = [(x.shape[2 + i] - 1) * s[i] - 2 * self.pads()[i][0] + d[i] * (k[i] - 1) + op[i] + 1
                 for i in range(2)]
        if any(isinstance(v, int) and v <= 0 for v in sizes):
            raise OpError(f"{self.name}: padding {self.pads()} leaves no output for input {x}",
                          "use less padding or a larger kernel or stride")
        return [x.with_shape((x.shape[0], self.out_channels, *sizes))]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        c = self.in_channels(inputs[0])
        k, _, _ = self.geometry()
        # PyTorch computes fan_in from weight.size(1) * receptive field = out/groups * k*k.
        fan_in = self.out_channels // self.groups * k[0] * k[1]
        out = {"weight": ParamSpec((c, self.out_channels // self.groups, *k), "kaiming_uniform(a=sqrt(5))",
                                   fan_in=fan_in, layout=(IN, OUT, SPATIAL, SPATIAL), groups=self.groups)}
        if self.bias:
            out["bias"] = ParamSpec((self.out_channels,), "uniform(fan_in)", axis="channel", fan_in=fan_in,
                                    layout=(OUT,))
        return out

    def conv_form(self, x: TensorType) -> ConvForm | None:
        """None: a transposed convolution is not a (strided) convolution of its input."""
        return None

    def input_channel_axis(self, x: TensorType) -> int | None:
        """None: a constant input shift does not become a per-channel bias (border and stride patterns)."""
        return None

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        k, _, _ = self.geometry()
        per_in = self.out_channels // self.groups * k[0] * k[1]
        return Cost(macs=inputs[0].numel() * per_in, activations=outputs[0].numel())


OPS = (Conv1d, Conv2d, Conv3d, ConvTranspose2d)
