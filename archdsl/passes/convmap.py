"""The algebra of exact re-parameterisation: eval-mode affine maps of a channels-first input as one convolution.

A :class:`ConvMap` is ``y = conv(pad(x), K, stride, groups) + b`` with dilation folded into the kernel as
zeros and explicit per-side padding; kernels stay grouped ([O, C/groups, *size]) and are regrouped to the
coarsest common partition only when two maps meet (a depthwise block never becomes a dense kernel). Convolutions, average pooling,
per-channel affine maps (eval BatchNorm, LayerScale) and the identity become ConvMaps; ``compose`` (one after
another) and ``combine`` (a weighted sum of parallel maps on the same input) give the ConvMap of a whole
re-parameterisation block, and :func:`to_conv` turns it back into one grouped convolution.

Structural mode carries geometry only (``kernel is None``); weight mode also carries float64 tensors. Every
operation checks the conditions under which it is exact and raises :class:`NotExact` with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import product
from typing import TYPE_CHECKING, Any

from archdsl.ops.base import ConvForm

if TYPE_CHECKING:
    import torch


class NotExact(Exception):
    """A rewrite would change the function; the message says why."""


@dataclass(frozen=True)
class ConvMap:
    """``y = conv(pad(x), kernel, stride, groups) + bias`` on [N, C, *spatial]; kernel [O, C/groups, *size]."""

    in_channels: int
    out_channels: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    mode: str
    groups: int                      # channel groups of the kernel
    has_bias: bool
    kernel: Any = None               # torch.Tensor [O, C/groups, *size] (float64) in weight mode
    bias: Any = None                 # torch.Tensor [O] (float64) in weight mode; None = zeros

    @property
    def spatial(self) -> int:
        """Number of spatial dims."""
        return len(self.size)

    @property
    def pointwise(self) -> bool:
        """1x1, stride 1, no padding: commutes with any re-indexing of positions (padding modes)."""
        return all(k == 1 for k in self.size) and all(s == 1 for s in self.stride) and not any(map(any, self.pads))

    @property
    def padded(self) -> bool:
        """Reads some padding."""
        return any(map(any, self.pads))


def from_form(form: ConvForm, params: dict[str, torch.Tensor] | None) -> ConvMap:
    """The ConvMap of an op described by ``form``; ``params`` (local name -> tensor) in weight mode."""
    size = tuple((k - 1) * d + 1 for k, d in zip(form.kernel, form.dilation, strict=True))
    m = ConvMap(form.in_channels, form.out_channels, size, form.stride, form.pads, form.mode, form.groups,
                form.bias is not None)
    if params is None:
        return m
    import torch

    o, c, g = form.out_channels, form.in_channels, form.groups
    if form.weight is None:
        w = torch.full((o, c // g, *form.kernel), form.constant, dtype=torch.float64)
    else:
        w = params[form.weight].detach().to(torch.float64)
    kernel = torch.zeros((o, c // g, *size), dtype=torch.float64)
    kernel[(slice(None), slice(None), *(slice(None, None, d) for d in form.dilation))] = w
    bias = params[form.bias].detach().to(torch.float64) if form.bias is not None else None
    return replace(m, kernel=kernel, bias=bias)


def channel_affine(channels: int, spatial: int, scale: Any, shift: Any, has_shift: bool,
                   weight_mode: bool) -> ConvMap:
    """``x * scale[c] + shift[c]`` as a 1x1 depthwise ConvMap (scale/shift: tensors, floats or None)."""
    m = ConvMap(channels, channels, (1,) * spatial, (1,) * spatial, ((0, 0),) * spatial, "zeros", channels, has_shift)
    if not weight_mode:
        return m
    import torch

    diag = torch.ones(channels, dtype=torch.float64) if scale is None else \
        torch.as_tensor(scale, dtype=torch.float64).detach().expand(channels).clone()
    kernel = diag.reshape(channels, 1, *(1,) * spatial)
    bias = None if shift is None else torch.as_tensor(shift, dtype=torch.float64).detach().expand(channels).clone()
    return replace(m, kernel=kernel, bias=bias, has_bias=has_shift)


def identity(channels: int, spatial: int, weight_mode: bool) -> ConvMap:
    """The identity as a centred delta kernel."""
    return channel_affine(channels, spatial, None, None, False, weight_mode)


def compose(a: ConvMap, b: ConvMap) -> ConvMap:
    """The map ``b(a(x))``; exact when b reads only real outputs of a, or a commutes with b's padding.

    A strided ``a`` dilates b's kernel by a's stride. When b pads, the padding of a's output must equal a
    applied to padding: true for a pointwise ``a`` with padding modes that re-index (reflect, replicate,
    circular), and for zero padding only when ``a`` has no bias.
    """
    if a.out_channels != b.in_channels:
        raise NotExact(f"channel counts do not chain ({a.out_channels} -> {b.in_channels})")
    stacked = b.padded and a.padded and _one_by_one(a) and a.mode == b.mode == "zeros" and not a.has_bias
    if b.padded and not a.pointwise and not stacked:
        raise NotExact("the second convolution pads the first one's output; the first is not 1x1 with stride 1, "
                       "so moving that padding to the input changes the border pixels")
    if b.padded and a.has_bias and b.mode == "zeros":
        raise NotExact("the second convolution zero-pads the output of a map with a bias (a BatchNorm shift), "
                       "so the merged convolution's border pixels would differ; DBB pads with the bias instead")
    if stacked:                                  # zero pad, 1x1 without bias, zero pad: one pad of the sum
        size, stride, mode = b.size, b.stride, "zeros"
        pads = tuple((p0 + q0, p1 + q1) for (p0, p1), (q0, q1) in zip(a.pads, b.pads, strict=True))
    elif b.padded:                               # a is pointwise: b's padding moves to the input unchanged
        size, stride, pads, mode = b.size, b.stride, b.pads, b.mode
    else:
        size = tuple(ka + (kb - 1) * sa for ka, kb, sa in zip(a.size, b.size, a.stride, strict=True))
        stride = tuple(sa * sb for sa, sb in zip(a.stride, b.stride, strict=True))
        pads, mode = a.pads, a.mode
    out = ConvMap(a.in_channels, b.out_channels, size, stride, pads, mode, math.gcd(a.groups, b.groups),
                  a.has_bias or b.has_bias)
    if a.kernel is None or b.kernel is None:
        return out
    import torch

    if _diagonal(b) and not b.padded:            # a per-channel scale after a (conv -> BatchNorm): scale a's rows
        scale = b.kernel.reshape(-1)
        bias = None if a.bias is None else a.bias * scale
        bias = b.bias if bias is None else bias if b.bias is None else bias + b.bias
        kernel = a.kernel * scale.reshape(-1, *(1,) * (a.kernel.dim() - 1))
        return replace(out, kernel=kernel, bias=bias, groups=a.groups)
    g = out.groups
    ak, bk = regroup(a.kernel, a.groups, g), regroup(b.kernel, b.groups, g)
    av = ak.reshape(g, a.out_channels // g, a.in_channels // g, *a.size)         # [g, M/g, C/g, *ka]
    bv = bk.reshape(g, b.out_channels // g, b.in_channels // g, *b.size)         # [g, O/g, M/g, *kb]
    kernel = torch.zeros((g, b.out_channels // g, a.in_channels // g, *size), dtype=torch.float64)
    for j in product(*(range(k) for k in b.size)):        # each tap of b reads a, shifted by j * stride(a)
        at = tuple(slice(jj * sa, jj * sa + ka) for jj, sa, ka in zip(j, a.stride, a.size, strict=True))
        index: tuple[slice, ...] = (slice(None), slice(None), slice(None), *at)
        kernel[index] += torch.einsum("gom,gmc...->goc...", bv[(..., *j)], av)  # type: ignore[index]  # (..., ints) indexes a tensor; mypy joins the items to object
    bias = b.bias
    if a.bias is not None:                                # a's bias reaches every tap of b
        taps = bv.sum(dim=tuple(range(3, 3 + b.spatial))) if b.spatial else bv   # [g, O/g, M/g]; sum(()) is all
        carried = torch.einsum("gom,gm->go", taps, a.bias.reshape(g, -1)).reshape(-1)
        bias = carried if bias is None else bias + carried
    return replace(out, kernel=kernel.reshape(b.out_channels, a.in_channels // g, *size), bias=bias)


def _one_by_one(m: ConvMap) -> bool:
    """1x1 with stride 1 (padding allowed)."""
    return all(k == 1 for k in m.size) and all(st == 1 for st in m.stride)


def _diagonal(m: ConvMap) -> bool:
    """A per-channel scale: 1x1, stride 1, one channel per group."""
    return m.groups == m.in_channels == m.out_channels and all(k == 1 for k in m.size) and \
        all(st == 1 for st in m.stride)


def combine(maps: list[ConvMap], coefficients: tuple[float, ...], sizes: tuple | None = None) -> ConvMap:
    """``sum_i c_i * map_i(x)``: kernels zero-padded to one window and aligned on their anchors.

    Exact when the maps share stride and channels, those that pad share the padding mode, and their output
    grids coincide: for every input size, or -- where ``sizes`` gives a spatial axis's (input, output)
    sizes as ints -- at that size ('same' padding with stride 2 pads by the input's parity).
    """
    first = maps[0]
    n = first.spatial
    if any((m.in_channels, m.out_channels, m.stride, m.spatial) != (first.in_channels, first.out_channels,
                                                                  first.stride, n) for m in maps):
        raise NotExact("the branches differ in channels or stride: " +
                       ", ".join(f"{m.in_channels}->{m.out_channels} stride {m.stride}" for m in maps))
    modes = {m.mode for m in maps if m.padded}
    if len(modes) > 1:
        raise NotExact(f"the branches pad with different modes ({', '.join(sorted(modes))})")
    lo = tuple(min(-m.pads[i][0] for m in maps) for i in range(n))
    hi = tuple(max(-m.pads[i][0] + m.size[i] - 1 for m in maps) for i in range(n))
    size = tuple(h - low + 1 for h, low in zip(hi, lo, strict=True))
    after = []
    for i in range(n):                    # the merged output size equals each branch's
        h, o = sizes[i] if sizes is not None else (None, None)
        if isinstance(h, int) and isinstance(o, int):   # one size: pad after just enough for the last window
            pad = max(0, (o - 1) * first.stride[i] + lo[i] + size[i] - h)
            if (h - lo[i] + pad - size[i]) // first.stride[i] + 1 != o:
                raise NotExact(f"the branches' output grids differ on spatial axis {i} at input size {h}")
            after.append(pad)
            continue
        wanted = {m.pads[i][0] + m.pads[i][1] - m.size[i] for m in maps}
        if len(wanted) > 1:
            raise NotExact(f"the branches' output grids differ on spatial axis {i} (anchors do not line up: "
                           f"pads {[m.pads[i] for m in maps]}, kernels {[m.size[i] for m in maps]})")
        after.append(wanted.pop() + size[i] + lo[i])
    if any(a < 0 for a in after):
        raise NotExact("aligning the branches would need a negative padding (a crop)")
    pads = tuple((-low, a) for low, a in zip(lo, after, strict=True))
    out = ConvMap(first.in_channels, first.out_channels, size, first.stride, pads, modes.pop() if modes else "zeros",
                  math.gcd(*(m.groups for m in maps)), any(m.has_bias for m in maps))
    if any(m.kernel is None for m in maps):
        return out
    import torch

    g = out.groups
    kernel = torch.zeros((first.out_channels, first.in_channels // g, *size), dtype=torch.float64)
    bias = None
    for m, c in zip(maps, coefficients, strict=True):
        at = tuple(slice(-m.pads[i][0] - lo[i], -m.pads[i][0] - lo[i] + m.size[i]) for i in range(n))
        kernel[(slice(None), slice(None), *at)] += c * regroup(m.kernel, m.groups, g)
        if m.bias is not None:
            bias = c * m.bias if bias is None else bias + c * m.bias
    return replace(out, kernel=kernel, bias=bias)


def regrouped(m: ConvMap, groups: int) -> ConvMap:
    """The same map with its kernel laid out in ``groups`` groups (a divisor of its own)."""
    kernel = None if m.kernel is None else regroup(m.kernel, m.groups, groups)
    return replace(m, groups=groups, kernel=kernel)


def scaled(m: ConvMap, c: float) -> ConvMap:
    """``c * m(x)``."""
    return combine([m], (c,))


def regroup(kernel: torch.Tensor, groups: int, coarser: int) -> torch.Tensor:
    """A kernel of ``groups`` groups [O, C/groups, *k] as one of ``coarser`` groups (which divides ``groups``).

    Each coarse group's block is block-diagonal in the fine groups it contains; the rest are zeros.
    """
    if groups == coarser:
        return kernel
    import torch

    if groups % coarser:
        raise NotExact(f"cannot regroup {groups} groups into {coarser}")
    r = groups // coarser
    o, cg = kernel.shape[0], kernel.shape[1]                                    # cg = C / groups
    fine = kernel.reshape(coarser, r, o // groups, cg, *kernel.shape[2:])
    out = torch.zeros((coarser, r, o // groups, r, cg, *kernel.shape[2:]), dtype=kernel.dtype)
    idx = torch.arange(r)
    out[:, idx, :, idx] = fine.movedim(1, 0)                                    # the diagonal blocks
    return out.reshape(o, r * cg, *kernel.shape[2:])


def conv_padding(m: ConvMap) -> tuple:
    """Padding as a conv op attribute: per-dim ints when symmetric, else per-dim (before, after) pairs."""
    if all(a == b for a, b in m.pads):
        return tuple(a for a, _ in m.pads)
    return m.pads


def selection(in_channels: int, picks: tuple[int | None, ...], spatial: int, weight_mode: bool) -> ConvMap:
    """Output channel j copies input channel ``picks[j]`` (None: zeros): a one-hot 1x1 convolution (slice, concat)."""
    out = len(picks)
    m = ConvMap(in_channels, out, (1,) * spatial, (1,) * spatial, ((0, 0),) * spatial, "zeros", 1, False)
    if not weight_mode:
        return m
    import torch

    kernel = torch.zeros((out, in_channels, *(1,) * spatial), dtype=torch.float64)
    for j, c in enumerate(picks):
        if c is not None:
            kernel[(j, c, *(0,) * spatial)] = 1.0
    return replace(m, kernel=kernel)


@dataclass(frozen=True)
class Flattened:
    """A row-major flatten of [N, channels, *grid] (static sizes) inside a chain: conv -> flatten -> Linear."""

    channels: int
    grid: tuple[int, ...]

    @property
    def features(self) -> int:
        """Elements per sample after the flatten."""
        return self.channels * math.prod(self.grid)

    def as_map(self, weight_mode: bool) -> ConvMap:
        """The flatten alone: the identity on its features (a Linear's view)."""
        return identity(self.features, 0, weight_mode)


def through_flatten(a: ConvMap, grid_in: tuple[int, ...], grid_out: tuple[int, ...], b: ConvMap) -> ConvMap:
    """``b(flatten(a(x)))`` as one dense map of flatten(x): b's rows pulled back through ``a`` (its adjoint), and
    a's bias carried through b. ``grid_in``/``grid_out``: a's input and output spatial sizes."""
    features = a.in_channels * math.prod(grid_in)
    if b.spatial or b.in_channels != a.out_channels * math.prod(grid_out):
        raise NotExact(f"a flatten of {a.out_channels}x{'x'.join(map(str, grid_out))} does not feed a map of "
                       f"{b.in_channels} features")
    out = ConvMap(features, b.out_channels, (), (), (), "zeros", 1, a.has_bias or b.has_bias)
    if a.kernel is None or b.kernel is None:
        return out
    import torch
    import torch.nn.functional as F

    rows = regroup(b.kernel, b.groups, 1).reshape(b.out_channels, 1, a.out_channels, *grid_out)
    weight = a.kernel
    pads = tuple(p for pair in reversed(a.pads) for p in pair)
    conv = (F.conv1d, F.conv2d, F.conv3d)[a.spatial - 1]

    def forward(x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, pads, mode="constant" if a.mode == "zeros" else a.mode) if any(pads) else x
        return conv(padded, weight, stride=a.stride, groups=a.groups)

    zero = torch.zeros((1, a.in_channels, *grid_in), dtype=torch.float64)
    pull = torch.func.vjp(forward, zero)[1]
    kernel = torch.func.vmap(pull)(rows)[0].reshape(b.out_channels, features)
    bias = b.bias
    if a.bias is not None:                     # a(0) is a's bias at every output position
        carried = rows.reshape(b.out_channels, a.out_channels, -1).sum(-1) @ a.bias
        bias = carried if bias is None else bias + carried
    return replace(out, kernel=kernel, bias=bias)


@dataclass(frozen=True)
class Shuffled:
    """A pixel shuffle [N, C r^s, *S] -> [N, C, *(S r)] inside a chain: the pointwise maps after it move before it
    (each becomes its Kronecker product with the identity on the r^s phases)."""

    channels: int                    # C, after the shuffle
    factor: int
    spatial: int

    @property
    def phases(self) -> int:
        """r ** spatial: input channels per output channel."""
        return self.factor ** self.spatial

    def as_map(self, weight_mode: bool) -> ConvMap:
        """A stand-in for costing the shuffle alone (it moves data: its own cost is its traffic)."""
        return identity(self.channels * self.phases, self.spatial, weight_mode)

    def lift(self, b: ConvMap) -> ConvMap:
        """``b`` (pointwise, after the shuffle) as the map before it: kernel kron(b, I), bias repeated per phase."""
        if not b.pointwise or b.in_channels != self.channels:
            raise NotExact("only a 1x1 map without padding moves through a pixel shuffle")
        r = self.phases
        out = replace(b, in_channels=b.in_channels * r, out_channels=b.out_channels * r)
        if b.kernel is None:
            return out
        import torch

        flat = b.kernel.reshape(b.out_channels, -1)
        kernel = torch.kron(flat, torch.eye(r, dtype=flat.dtype)).reshape(b.out_channels * r, -1, *(1,) * b.spatial)
        bias = None if b.bias is None else b.bias.repeat_interleave(r)
        return replace(out, kernel=kernel, bias=bias)
