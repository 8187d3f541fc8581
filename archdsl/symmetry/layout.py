"""Axis layouts over leaf segments: a union-find whose classes can be split (partition refinement).

Every tracked tensor axis is a *layout*: a sequence of pieces. A piece is a *leaf* (a segment of hidden
units that must be permuted together with every other occurrence of the same leaf) or a pinned stretch
(batch, spatial and input axes, anything no symmetry may move). Ties between two axes cut both layouts at
the union of their boundaries (splitting a leaf splits it everywhere it occurs: refinement) and then union
the leaves pairwise. Each piece also carries a *scale token*: a second union-find whose classes are the
links along which a per-unit scaling travels (producer rows x s, consumer columns / s), with the kind of
scaling every op on the link allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archdsl.ir.dims import Dim
from archdsl.ir.types import Span

# Scale kinds, from most to least permissive: any invertible matrix (GL: between linear maps with nothing
# per-unit in between), any nonzero factor per unit, positive factors, signs, none.
KINDS = ("gl", "any", "positive", "sign", "none")


def meet(a: str, b: str) -> str:
    """The kinds both ``a`` and ``b`` allow (positive and sign share only the identity)."""
    for x, y in ((a, b), (b, a)):
        if x == y or y == "gl" or (y == "any" and x != "gl"):
            return x
    return "none"


@dataclass(frozen=True)
class Why:
    """One provenance entry: what an op did to a class, and where the op is written."""

    verb: str                      # created | tied | pinned | cut | blocked
    node: str
    op: str
    detail: str = ""
    span: Span | None = None

    def __str__(self) -> str:
        where = f" at {self.span}" if self.span else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.verb} by {self.op} '{self.node}'{where}{detail}"


@dataclass(frozen=True)
class Piece:
    """A stretch of an axis: ``length`` units of ``leaf`` (None: pinned), each repeated ``rep`` times."""

    leaf: int | None
    length: Dim
    rep: Dim = 1
    token: int | None = None
    note: str = ""                 # why a pinned stretch is pinned (graph input, spatial axis, ...)

    @property
    def size(self) -> Dim:
        """Positions the piece covers."""
        return self.length * self.rep


Layout = tuple[Piece, ...]


def layout_size(layout: Layout) -> Dim:
    """Positions of a layout."""
    total: Dim = 0
    for p in layout:
        total = total + p.size
    return total


@dataclass
class Forest:
    """Leaves (segment union-find with splits) and scale tokens (union-find with a kind per class)."""

    parent: list[int] = field(default_factory=list)
    length: list[int] = field(default_factory=list)
    children: dict[int, tuple[int, ...]] = field(default_factory=dict)
    pinned: dict[int, str] = field(default_factory=dict)
    why: dict[int, list[Why]] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)           # creation order of leaves (stable class order)
    tparent: list[int] = field(default_factory=list)
    tkind: dict[int, str] = field(default_factory=dict)
    twhy: dict[int, list[Why]] = field(default_factory=dict)

    # -- leaves ---------------------------------------------------------------------------------
    def leaf(self, n: int, why: Why) -> int:
        """A new leaf of ``n`` units."""
        i = len(self.parent)
        self.parent.append(i)
        self.length.append(n)
        self.why[i] = [why]
        self.order.append(i)
        return i

    def find(self, x: int) -> int:
        """The root of ``x`` (path halving)."""
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def resolve(self, x: int) -> list[int]:
        """The unsplit roots that make up leaf ``x``, in order."""
        out, stack = [], [x]
        while stack:
            r = self.find(stack.pop())
            if r in self.children:
                stack.extend(reversed(self.children[r]))
            else:
                out.append(r)
        return out

    def split(self, root: int, ks: list[int], why: Why) -> tuple[int, ...]:
        """Cut the unsplit root ``root`` at the interior offsets ``ks`` (sorted), everywhere it occurs."""
        history = self.why[root] + [why]
        edges = [0, *ks, self.length[root]]
        kids = []
        for a, b in zip(edges, edges[1:], strict=False):
            c = self.leaf(b - a, why)
            self.why[c] = list(history)
            if root in self.pinned:
                self.pinned[c] = self.pinned[root]
            kids.append(c)
        self.children[root] = tuple(kids)
        return tuple(kids)

    def union(self, a: int, b: int, why: Why) -> int:
        """Merge two unsplit roots of equal length; pinned wins."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if len(self.why[ra]) < len(self.why[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.why[ra].extend(self.why.pop(rb))
        self.why[ra].append(why)
        if rb in self.pinned and ra not in self.pinned:
            self.pinned[ra] = self.pinned[rb]
        return ra

    def pin(self, x: int, reason: str, why: Why) -> None:
        """No symmetry may move leaf ``x`` (every part of it)."""
        for r in self.resolve(x):
            if r not in self.pinned:
                self.pinned[r] = reason
                self.why[r].append(why)

    # -- scale tokens ---------------------------------------------------------------------------
    def token(self, kind: str, why: Why) -> int:
        """A new scale link allowing ``kind``."""
        t = len(self.tparent)
        self.tparent.append(t)
        self.tkind[t] = kind
        self.twhy[t] = [why]
        return t

    def tfind(self, t: int) -> int:
        """The root of token ``t``."""
        parent = self.tparent
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    def tunion(self, a: int, b: int) -> int:
        """One link from two; the kind is what both allow."""
        ra, rb = self.tfind(a), self.tfind(b)
        if ra == rb:
            return ra
        if len(self.twhy[ra]) < len(self.twhy[rb]):        # by size: a long residual stream stays linear
            ra, rb = rb, ra
        self.tparent[rb] = ra
        self.tkind[ra] = meet(self.tkind[ra], self.tkind.pop(rb))
        self.twhy[ra].extend(self.twhy.pop(rb))
        return ra

    def constrain(self, t: int, kind: str, why: Why) -> None:
        """Restrict link ``t`` to ``kind``."""
        r = self.tfind(t)
        new = meet(self.tkind[r], kind)
        if new != self.tkind[r]:
            self.tkind[r] = new
            self.twhy[r].append(why)

    # -- layouts --------------------------------------------------------------------------------
    def expand(self, layout: Layout) -> list[Piece]:
        """The layout over unsplit roots."""
        out: list[Piece] = []
        for p in layout:
            if p.leaf is None:
                out.append(p)
                continue
            for r in self.resolve(p.leaf):
                out.append(Piece(r, self.length[r], p.rep, p.token))
        return out

    def cut(self, layout: Layout, positions, why: Why) -> Layout:
        """The layout with boundaries at ``positions`` (splitting leaves there, or pinning a leaf when a cut
        falls inside one unit's repeats). One pass; a leaf occurring twice is re-read after a split."""
        pos = sorted({p for p in positions if isinstance(p, int)})
        out: list[Piece] = []
        work = list(reversed(self.expand(layout)))
        at: Dim = 0
        i = 0
        while work:
            p = work.pop()
            if p.leaf is not None and self.find(p.leaf) in self.children:       # split earlier in this pass
                work.extend(reversed([Piece(r, self.length[r], p.rep, p.token) for r in self.resolve(p.leaf)]))
                continue
            end = at + p.size
            inside = []
            if isinstance(at, int) and isinstance(end, int):
                while i < len(pos) and pos[i] <= at:
                    i += 1
                while i < len(pos) and pos[i] < end:
                    inside.append(pos[i] - at)
                    i += 1
            out += self._cut_piece(p, inside, why) if inside else [p]
            at = end
        return tuple(out)

    def _cut_piece(self, p: Piece, ks: list[int], why: Why) -> list[Piece]:
        edges = [0, *ks, p.size]
        if p.leaf is not None and isinstance(p.rep, int) and all(k % p.rep == 0 for k in ks):
            kids = self.split(self.find(p.leaf), [k // p.rep for k in ks], why)
            return [Piece(c, self.length[c], p.rep, p.token) for c in kids]
        if p.leaf is not None:
            self.pin(p.leaf, "a cut falls inside the repeats of one unit", why)
            if p.token is not None:
                self.constrain(p.token, "none", why)
        return [Piece(None, b - a, note=p.note) for a, b in zip(edges, edges[1:], strict=False)]

    def bounds(self, layout: Layout) -> list[int]:
        """Interior boundaries (int positions) of a layout."""
        out: list[int] = []
        at: Dim = 0
        for p in self.expand(layout)[:-1]:
            at = at + p.size
            if isinstance(at, int):
                out.append(at)
        return out

    def sub(self, layout: Layout, start: int, stop: int, why: Why) -> Layout:
        """Positions [start, stop) of a layout, cutting it there."""
        return self.parts(layout, [start, stop], why)[1]

    def parts(self, layout: Layout, edges: list[int], why: Why) -> list[Layout]:
        """The layout cut at sorted ``edges``: the pieces before the first, between each pair, after the last."""
        layout = self.cut(layout, edges, why)
        out: list[list[Piece]] = [[] for _ in range(len(edges) + 1)]
        at: Dim = 0
        k = 0
        for p in layout:
            while k < len(edges) and isinstance(at, int) and at >= edges[k]:
                k += 1
            out[k].append(p)
            at = at + p.size
        return [tuple(x) for x in out]

    def tie(self, a: Layout, b: Layout, why: Why) -> Layout:
        """Make two layouts of the same axis one: common refinement, then pairwise union."""
        if a == b:
            return a
        sa, sb = layout_size(a), layout_size(b)
        if sa != sb or not isinstance(sa, int):
            for layout in (a, b):
                self.pin_layout(layout, "tied to an axis of another or unknown size", why)
            return (Piece(None, sa),) if sa == sb else a
        while self.bounds(a) != self.bounds(b):      # cuts can split leaves both sides share: to a fixpoint
            a = self.cut(a, self.bounds(b), why)
            b = self.cut(b, self.bounds(a), why)
        a, b = tuple(self.expand(a)), tuple(self.expand(b))
        out = []
        for p, q in zip(a, b, strict=True):
            if p.leaf is not None and q.leaf is not None and p.rep == q.rep and p.length == q.length:
                r = self.union(p.leaf, q.leaf, why)
                t = self.tunion(p.token, q.token) if p.token is not None and q.token is not None else None
                if t is None:
                    for x in (p, q):
                        if x.token is not None:
                            self.constrain(x.token, "none", why)
                out.append(Piece(r, p.length, p.rep, t))
            else:
                for x in (p, q):
                    self.pin_layout((x,), "tied to a pinned axis", why)
                out.append(Piece(None, p.size))
        return tuple(out)

    def pin_layout(self, layout: Layout, reason: str, why: Why) -> None:
        """Pin every leaf of a layout and stop every scale link through it."""
        for p in layout:
            if p.leaf is not None:
                self.pin(p.leaf, reason, why)
            if p.token is not None:
                self.constrain(p.token, "none", why)
