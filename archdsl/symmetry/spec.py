"""The derived symmetry group of a graph's weights: classes, their members and reasons, and group elements.

A *class* is a set of hidden units (a leaf of the derivation) that may be permuted together: every member
is a parameter or buffer axis range holding those units. A *block class* permutes whole tuples of classes
(groups of a grouped convolution, attention heads). *Links* carry per-unit scalings between the weights
that create a unit and those that consume it, with the kind every op on the way allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from archdsl.errors import Diagnostic, UsageError
from archdsl.symmetry.layout import Why

SCALE_RANGE = 4.0        # sampled scalings are log-uniform in [1/4, 4]
ALL_KINDS = ("perm", "block", "scale", "sign", "linear")
CONDITION = 4.0          # sampled GL elements have condition number at most 4


def _invertible(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random n x n matrix U diag(s) V^T, U and V orthogonal, s log-uniform with s_max / s_min <= CONDITION."""
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s = np.exp(rng.uniform(-0.5, 0.5, n) * np.log(CONDITION))
    return u @ np.diag(s) @ v.T


def _matrix(s: np.ndarray) -> np.ndarray:
    return np.diag(s) if s.ndim == 1 else s


@dataclass(frozen=True)
class Seg:
    """One stretch of a member axis: ``length`` units of ``leaf`` (None: pinned), each ``rep`` times."""

    start: int
    length: int
    rep: int = 1
    leaf: int | None = None
    token: int | None = None
    note: str = ""


@dataclass(frozen=True)
class Member:
    """Where a class lives: a parameter axis, a position range, and the scaling exponent it takes."""

    param: str
    axis: int
    start: int
    stop: int
    rep: int = 1
    exponent: int = 0
    index: tuple[int, int, int] | None = None    # only this slab (axis, start, stop) of the parameter

    def __str__(self) -> str:
        where = f"{self.param}[axis {self.axis}: {self.start}:{self.stop}]"
        if self.rep != 1:
            where += f" x{self.rep}"
        if self.index:
            where += f" (rows {self.index[1]}:{self.index[2]} of axis {self.index[0]})"
        return where


@dataclass
class SymClass:
    """A class of interchangeable hidden units."""

    id: str
    size: int
    kind: str                                   # "perm", or "pinned" for a pinned class
    members: list[Member]
    provenance: list[Why]
    scalings: list[str] = field(default_factory=list)    # kinds of the scaling links through the class
    block: str | None = None                    # the block class it belongs to
    reason: str = ""                            # why it is pinned


@dataclass
class BlockClass:
    """Whole tuples of classes that may be permuted among themselves (groups, heads)."""

    id: str
    blocks: list[list[str]]                     # class ids per block, same profile in every block
    provenance: list[Why]
    kind: str = "blocks"

    @property
    def size(self) -> int:
        """Number of blocks."""
        return len(self.blocks)


@dataclass(frozen=True)
class Entry:
    """A parameter axis as the group acts on it (internal form of members)."""

    param: str
    axis: int
    segs: tuple[Seg, ...]
    exponent: int
    index: tuple[int, int, int] | None = None
    role: tuple | None = None


@dataclass
class GroupElement:
    """Permutations per class and per block class, and scalings per (link, class): a vector of per-unit
    factors, or an invertible matrix on a GL link."""

    perms: dict[int, np.ndarray] = field(default_factory=dict)
    blocks: dict[str, np.ndarray] = field(default_factory=dict)
    scales: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)


@dataclass
class SymmetrySpec:
    """The weight-space symmetry group of one graph (see :func:`archdsl.symmetry.derive`)."""

    name: str
    classes: list[SymClass]
    block_classes: list[BlockClass]
    pinned: list[SymClass]
    uncovered: list[tuple[str, int, str]]        # (param, axis, reason): axes no class moves
    entries: list[Entry]
    links: dict[int, str]                        # scaling link -> kind
    leaf_of: dict[str, int]                      # class id -> leaf
    shapes: dict[str, tuple[int, ...]]
    notes: list[str] = field(default_factory=list)   # block structures dropped, and why
    link_provenance: dict[int, list[Why]] = field(default_factory=dict)   # which ops made each link's kind
    on_values: dict[str, list[tuple[str, int, int, int]]] = field(default_factory=dict)   # class -> value ranges

    # -- lookup -----------------------------------------------------------------------------------
    def find(self, cid: str) -> SymClass | BlockClass:
        """A class or block class by id (UsageError listing ids when unknown)."""
        candidates: list[SymClass | BlockClass] = [*self.classes, *self.block_classes, *self.pinned]
        for c in candidates:
            if c.id == cid:
                return c
        raise UsageError(Diagnostic(f"no symmetry class '{cid}' in {self.name}",
                                    hint=f"classes: {', '.join(c.id for c in self.classes[:12])} ..."))

    def _block_leaves(self) -> dict[str, list[list[int]]]:
        return {b.id: [[self.leaf_of[c] for c in blk] for blk in b.blocks] for b in self.block_classes}

    # -- sampling -----------------------------------------------------------------------------------
    def sample(self, seed: int | np.random.Generator = 0, kinds=ALL_KINDS) -> GroupElement:
        """A random element: permutations of classes and blocks, scalings log-uniform in [1/4, 4], signs."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        unknown = set(kinds) - set(ALL_KINDS)
        if unknown:
            raise UsageError(Diagnostic(f"unknown group kinds {sorted(unknown)}", hint=f"kinds: {ALL_KINDS}"))
        g = GroupElement()
        if "perm" in kinds:
            for c in self.classes:
                if c.size > 1:
                    g.perms[self.leaf_of[c.id]] = rng.permutation(c.size)
        if "block" in kinds:
            for b in self.block_classes:
                g.blocks[b.id] = rng.permutation(b.size)
        for (token, leaf), n in self.scalable().items():
            kind = self.links[token]
            if kind == "gl" and "linear" in kinds and n > 1:
                g.scales[(token, leaf)] = _invertible(rng, n)
                continue
            kind = "any" if kind == "gl" else kind
            s = np.ones(n)
            if "scale" in kinds and kind in ("any", "positive"):
                s = np.exp(rng.uniform(-np.log(SCALE_RANGE), np.log(SCALE_RANGE), n))
            if "sign" in kinds and kind in ("any", "sign"):
                s = s * rng.choice([-1.0, 1.0], n)
            if not np.all(s == 1):
                g.scales[(token, leaf)] = s
        return g

    def scalable(self) -> dict[tuple[int, int], int]:
        """(link, leaf) pairs a scaling may act on, with their sizes."""
        out = {}
        for e in self.entries:
            for s in e.segs:
                if s.leaf is not None and s.token is not None and self.links.get(s.token, "none") != "none":
                    out[(s.token, s.leaf)] = s.length
        return out

    def identity(self) -> GroupElement:
        """The identity element."""
        return GroupElement()

    def compose(self, g1: GroupElement, g2: GroupElement) -> GroupElement:
        """g1 g2: acting with the result is acting with g2, then g1."""
        tau1 = self._tau(g1)
        inv1 = {v: k for k, v in tau1.items()}
        out = GroupElement()
        for b in self.block_classes:
            s1 = g1.blocks.get(b.id, np.arange(b.size))
            s2 = g2.blocks.get(b.id, np.arange(b.size))
            out.blocks[b.id] = s1[s2]
        leaves = set(g1.perms) | {tau1.get(leaf, leaf) for leaf in g2.perms}
        for m in leaves:
            src = inv1.get(m, m)
            p1, p2 = g1.perms.get(m), g2.perms.get(src)
            if p1 is None:
                if p2 is None:
                    continue
                p1 = np.arange(len(p2))
            if p2 is None:
                p2 = np.arange(len(p1))
            out.perms[m] = p1[p2]
        for (t, m) in set(g1.scales) | {(t, tau1.get(leaf, leaf)) for t, leaf in g2.scales}:
            src = inv1.get(m, m)
            q1 = g1.scales.get((t, m))
            q2 = g2.scales.get((t, src))
            known = q1 if q1 is not None else q2
            if known is None:
                raise KeyError(f"no scale ({t}, {m}) in either element")
            n = len(known)
            f1 = np.ones(n) if q1 is None else q1
            f2 = np.ones(n) if q2 is None else q2
            back = np.argsort(g1.perms.get(m, np.arange(n)))          # the unit g1 moved to each position
            if f1.ndim == 1 and f2.ndim == 1:
                out.scales[(t, m)] = f1 * f2[back]
            else:                                                     # S1 (P1 S2 P1^-1)
                out.scales[(t, m)] = _matrix(f1) @ _matrix(f2)[np.ix_(back, back)]
        return out

    def _tau(self, g: GroupElement) -> dict[int, int]:
        """Where each leaf of a block class goes under the block permutations of ``g``."""
        tau: dict[int, int] = {}
        for bid, blocks in self._block_leaves().items():
            sigma = g.blocks.get(bid)
            if sigma is None:
                continue
            for b, blk in enumerate(blocks):
                for k, leaf in enumerate(blk):
                    tau[leaf] = blocks[sigma[b]][k]
        return tau

    # -- acting on weights --------------------------------------------------------------------------
    def apply(self, state: dict, g: GroupElement, keep=None) -> dict:
        """``g`` acting on a state_dict (torch tensors or numpy arrays); ``keep(entry)`` can leave members
        out (to test that a one-sided transform does change the function)."""
        from archdsl.symmetry.act import act

        return act(self, state, g, keep)

    def canonicalize(self, state: dict) -> dict:
        """The canonical representative of ``state``'s orbit (see :mod:`archdsl.symmetry.canon`)."""
        from archdsl.symmetry.canon import canonicalize

        return canonicalize(self, state)

    def equivalent(self, a: dict, b: dict, rtol: float = 1e-7, atol: float = 1e-9) -> bool:
        """Whether two checkpoints are the same function up to this group (equal canonical forms)."""
        import torch

        ca, cb = self.canonicalize(a), self.canonicalize(b)
        return all(torch.allclose(torch.as_tensor(ca[k]).double(), torch.as_tensor(cb[k]).double(), rtol, atol)
                   for k in ca)

    def align(self, a: dict, b: dict, seed: int = 0, max_iter: int = 100) -> tuple[GroupElement, dict]:
        """Weight matching: the permutation of ``b`` that best matches ``a``, and ``b`` permuted by it."""
        from archdsl.symmetry.canon import align

        return align(self, a, b, seed, max_iter)
