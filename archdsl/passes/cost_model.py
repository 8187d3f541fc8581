"""The cost model behind ``collapse-linear``: what a chain of affine maps costs kept apart or collapsed.

A chain's ops are cut into segments, each segment run as one collapsed convolution. A segment costs its
MACs (output elements x input channels per group x kernel taps), weighted by a per-backend penalty for
depthwise and large depthwise kernels, plus the activation traffic of reading its input and writing its
output. :func:`plan` chooses the cheapest cut by dynamic programming over the chain; a cut whose composition
is not exact (a padded intermediate) is never chosen.

    # SESR's 16 -> 256 -> 16 expansion (3x3 then 1x1):  9*16*256 + 256*16 = 40,960 MACs/px -> 9*16*16 = 2,304
    # a 256 -> 64 -> 256 bottleneck (1x1, 1x1):          2 * 256*64 = 32,768            -> 65,536 (kept)
    # two 3x3 convs C -> C:                              18 C^2                          -> 25 C^2 (kept)
    # depthwise 3x3 + pointwise (C = 128):               9C + C^2                        -> 9 C^2 (kept)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from archdsl.passes.convmap import ConvMap, Flattened, NotExact, Shuffled, compose, through_flatten


@dataclass(frozen=True)
class Penalty:
    """How a backend's speed departs from counting MACs: multipliers per MAC, and a price per activation element."""

    depthwise: float = 1.0           # per MAC of a depthwise conv (memory-bound: fewer MACs per second)
    large_kernel: int = 7            # a depthwise kernel with more taps than large_kernel**2 ...
    large_depthwise: float = 1.0     # ... costs this much more (or less) per MAC than a small depthwise one
    traffic: float = 0.0             # per activation element read or written, in MAC-equivalents


# per backend; "macs" counts MACs alone (the figures in the table).
# "cpu" was fitted by `python -m benchmarks.collapse --calibrate` (torch 2.13 CPU, one thread, thread CPU time so
# that other processes on a shared machine do not skew it; least squares over dense convs with >= 64 input
# channels): a dense convolution costs ~20.5 ps per MAC and each activation element read or written ~0.15 ns
# (7.3 MAC-equivalents); a 3x3 depthwise conv x5.3 per MAC, a 7x7 or 9x9 one x2.1-2.4 (x5.3 * 0.42: PyTorch's
# CPU depthwise kernels are not slower per MAC for large kernels). With it the DP's choices agree with
# measurement on the table (README, collapse benchmark).
PENALTIES: dict[str, Penalty] = {
    "macs": Penalty(),
    "cpu": Penalty(depthwise=5.3, large_kernel=5, large_depthwise=0.42, traffic=7.3),
    "cuda": Penalty(depthwise=8.0, large_kernel=7, large_depthwise=3.0, traffic=4.0),
}


def macs_per_output(m: ConvMap) -> int:
    """MACs for one output element of the convolution ``m`` (input channels per group x kernel taps)."""
    return m.in_channels // m.groups * math.prod(m.size)


def depthwise(m: ConvMap) -> bool:
    """One input channel per group and as many groups as channels (more than one)."""
    return m.groups > 1 and m.groups == m.in_channels == m.out_channels


def cost(m: ConvMap, in_elems: int, out_elems: int, penalty: Penalty, macs: int | None = None) -> float:
    """The cost of running ``m`` as one op on an input of ``in_elems`` elements giving ``out_elems``.

    ``macs`` overrides the convolution's MAC count (an op's own declared cost: a BatchNorm or a pad is no
    multiply-accumulate convolution when it runs as itself).
    """
    work = float(macs_per_output(m) * out_elems if macs is None else macs)
    if depthwise(m):
        work *= penalty.depthwise
        if math.prod(m.size) > penalty.large_kernel ** 2:
            work *= penalty.large_depthwise
    return work + penalty.traffic * (in_elems + out_elems)


@dataclass(frozen=True)
class Segment:
    """Units ``start:stop`` of a chain, collapsed into ``merged`` (or kept as they are), and its cost."""

    start: int
    stop: int
    merged: ConvMap
    cost: float
    collapsed: bool = True           # False: a single unit that runs as its own ops


@dataclass(frozen=True)
class Plan:
    """The chosen cut of a chain, its cost, and the cost of keeping every op apart."""

    segments: tuple[Segment, ...]
    cost: float
    kept_cost: float

    @property
    def collapses(self) -> bool:
        """Some segment is collapsed into one op."""
        return any(s.collapsed for s in self.segments)


def segment_map(maps: Sequence[ConvMap | Flattened | Shuffled], start: int, stop: int,
                grids: Sequence[tuple[int, ...] | None] | None = None) -> ConvMap:
    """The composition of ``maps[start:stop]``; raises NotExact.

    A :class:`~archdsl.passes.convmap.Flattened` entry joins the convolution before it to the dense map after it
    (``grids[i]``: the spatial sizes of entry i's input); a :class:`~archdsl.passes.convmap.Shuffled` one lets the
    pointwise maps after it move before it (the collapsed op is then followed by the shuffle). A segment neither
    starts at such an entry nor ends at a flatten, and merges at least two maps.
    """
    first = maps[start]
    if stop - start == 1 and isinstance(first, (Flattened, Shuffled)):
        return first.as_map(False)
    if isinstance(first, (Flattened, Shuffled)) or isinstance(maps[stop - 1], Flattened):
        raise NotExact("a collapsed segment neither starts at a flatten or shuffle nor ends at a flatten")
    if stop - start > 1 and sum(not isinstance(m, (Flattened, Shuffled)) for m in maps[start:stop]) < 2:
        raise NotExact("one map and a shuffle: nothing to collapse")
    m, start_grid, flat, shuffle = first, None if grids is None else grids[start], None, None
    for i in range(start + 1, stop):
        b = maps[i]
        if isinstance(b, Flattened):
            if shuffle is not None or m.spatial != len(b.grid) or m.out_channels != b.channels or start_grid is None:
                raise NotExact("the flatten does not follow a convolution of known spatial size")
            flat = b
        elif isinstance(b, Shuffled):
            if shuffle is not None or m.out_channels != b.channels * b.phases:
                raise NotExact("two pixel shuffles in one segment")
            shuffle = b
        elif flat is not None:
            if start_grid is None:                     # a flatten is taken only after a known grid
                raise NotExact("the flatten does not follow a convolution of known spatial size")
            m, flat = through_flatten(m, start_grid, flat.grid, b), None
        else:
            m = compose(m, shuffle.lift(b) if shuffle is not None else b)
    return m


def plan(maps: Sequence[ConvMap | Flattened | Shuffled], elems: Sequence[int], penalty: Penalty, force: bool = False,
         allowed: Callable[[int, int], bool] = lambda start, stop: True,
         own: Sequence[int | None] | None = None, grids: Sequence[tuple[int, ...] | None] | None = None,
         fans: Sequence[bool] | None = None) -> Plan:
    """The cheapest cut of a chain of ``maps`` (``elems[i]``: elements of unit i's input; ``elems[-1]``: output).

    With ``force`` the fewest segments win (ties by cost, collapsing first): every exact collapse is taken.
    ``allowed(start, stop)`` rejects segments that must not merge; ``own[i]`` is unit i's declared MACs when it
    runs as its own ops; ``fans[i]``: unit i is several ops (branches and a join) that may collapse alone.
    """
    n = len(maps)
    own = [None] * n if own is None else own
    fans = [False] * n if fans is None else fans
    best: list[tuple[tuple[float, float], tuple[Segment, ...]]] = [((0.0, 0.0), ())]
    for stop in range(1, n + 1):
        choice = None
        for start in range(stop - 1, -1, -1):
            try:
                merged = segment_map(maps, start, stop, grids)
            except NotExact:
                continue
            single = stop - start == 1
            options = [(False, cost(merged, elems[start], elems[stop], penalty, own[start]))] if single else []
            if (not single or fans[start]) and allowed(start, stop):
                options.append((True, cost(merged, elems[start], elems[stop], penalty)))
            (count, total), segments = best[start]
            for collapsed, c in options:
                key = (count + 1, total + c - (0.5 if collapsed else 0.0)) if force else (0.0, total + c)
                if choice is None or key < choice[0]:
                    choice = (key, (*segments, Segment(start, stop, merged, c, collapsed)))
        if choice is None:      # a single unit always maps on its own
            raise ValueError(f"no segment of the chain ends at unit {stop}")
        best.append(choice)
    _, segments = best[n]
    kept = sum(cost(segment_map(maps, i, i + 1), elems[i], elems[i + 1], penalty, own[i]) for i in range(n))
    return Plan(segments, sum(s.cost for s in segments), kept)
