"""Assemble a SymmetrySpec from a derivation: final classes, validated block classes, coverage."""

from __future__ import annotations

import gc
from collections import defaultdict
from typing import cast

from archdsl.ir.graph import Graph
from archdsl.symmetry.layout import Layout, Why
from archdsl.symmetry.spec import BlockClass, Entry, Member, Seg, SymClass, SymmetrySpec
from archdsl.symmetry.walk import Derivation, walk


def derive(graph: Graph) -> SymmetrySpec:
    """The weight-space symmetry group of ``graph``, derived from its ops' symmetry contracts."""
    enabled = gc.isenabled()
    gc.disable()            # the derivation allocates many small acyclic objects: collecting mid-way is pure cost
    try:
        return assemble(walk(graph))
    finally:
        if enabled:
            gc.enable()


def assemble(d: Derivation) -> SymmetrySpec:
    """Turn the walk's layouts into classes, block classes, pinned classes and coverage."""
    f = d.forest
    cache: dict[int, tuple[Seg, ...]] = {}          # records share layout tuples: resolve each once
    raw = [Entry(r.param, r.axis, _segs(d, r.layout, cache), r.exponent, r.index, r.role) for r in d.records]
    order: dict[int, int] = {}
    for e in raw:
        for s in e.segs:
            if s.leaf is not None:
                order.setdefault(s.leaf, len(order))
    blocks, dropped = _blocks(d, raw)
    # a parameter shared by several nodes is acted on once
    unpinned: dict[int, tuple[Seg, ...]] = {}
    for e in raw:
        if id(e.segs) not in unpinned:
            unpinned[id(e.segs)] = tuple(_unpin(d, s) for s in e.segs)
    entries = list(dict.fromkeys(Entry(e.param, e.axis, unpinned[id(e.segs)], e.exponent, e.index, e.role)
                                 for e in raw))
    ids: dict[int, str] = {}
    classes: list[SymClass] = []
    pinned: list[SymClass] = []
    members: dict[int, dict[Member, None]] = defaultdict(dict)          # ordered, without repeats
    kinds: dict[int, set[str]] = defaultdict(set)
    for e in raw:
        for s in e.segs:
            if s.leaf is None:
                continue
            members[s.leaf][Member(e.param, e.axis, s.start, s.start + s.length * s.rep, s.rep, e.exponent,
                                   e.index)] = None
            if s.token is not None and f.tkind.get(s.token, "none") != "none":
                kinds[s.leaf].add(f.tkind[s.token])
    for leaf in sorted(order, key=order.__getitem__):
        if leaf in f.pinned:
            c = SymClass(f"p{len(pinned)}", f.length[leaf], "pinned", list(members[leaf]), f.why[leaf],
                         reason=f.pinned[leaf])
            pinned.append(c)
        else:
            c = SymClass(f"c{len(classes)}", f.length[leaf], "perm", list(members[leaf]), f.why[leaf],
                         sorted(kinds[leaf]))
            classes.append(c)
        ids[leaf] = c.id
    block_classes = []
    by_id = {c.id: c for c in classes}
    for i, (leaves, why) in enumerate(blocks):
        bc = BlockClass(f"b{i}", [[ids[leaf] for leaf in blk] for blk in leaves], why)
        block_classes.append(bc)
        for blk in leaves:
            for leaf in blk:
                by_id[ids[leaf]].block = bc.id
    links = {s.token: f.tkind[s.token] for e in entries for s in e.segs if s.token is not None}
    shapes = {k: tuple(int(x) for x in p.shape) for k, p in d.graph.params.items()}
    spec = SymmetrySpec(d.graph.name, classes, block_classes, pinned, _uncovered(d, raw, shapes),
                        entries, links, {cid: leaf for leaf, cid in ids.items()}, shapes, dropped,
                        {t: f.twhy[t] for t in links}, _on_values(d, ids))
    return spec


def _on_values(d: Derivation, ids: dict[int, str]) -> dict[str, list[tuple[str, int, int, int]]]:
    """Class id -> the (value, axis, start, stop) ranges it occupies (how rewrites are related to classes)."""
    out: dict[str, list[tuple[str, int, int, int]]] = defaultdict(list)
    for value, layouts in d.values.items():
        for axis, layout in enumerate(layouts):
            concrete = all(isinstance(p.length, int) and isinstance(p.rep, int) for p in layout)
            for s in _segs(d, layout) if concrete else ():
                if s.leaf in ids:
                    out[ids[s.leaf]].append((value, axis, s.start, s.start + s.length * s.rep))
    return dict(out)


def _segs(d: Derivation, layout: Layout, cache: dict | None = None) -> tuple[Seg, ...]:
    if cache is not None and id(layout) in cache:
        return cache[id(layout)]
    f = d.forest
    out, at = [], 0
    for p in f.expand(layout):
        if not isinstance(p.length, int) or not isinstance(p.rep, int):
            raise ValueError(f"a class of symbolic size {p.length} x {p.rep} cannot be laid out in a parameter")
        n, r = p.length, p.rep
        token = f.tfind(p.token) if p.token is not None and p.leaf is not None else None
        out.append(Seg(at, n, r, p.leaf, token, p.note))
        at += n * r
    if cache is not None:
        cache[id(layout)] = tuple(out)
        cache[-id(layout)] = layout           # keep the tuple alive so that its id is not reused
    return tuple(out)


def _unpin(d: Derivation, s: Seg) -> Seg:
    """Pinned leaves act as pinned stretches (the group does not move them)."""
    if s.leaf is None or s.leaf not in d.forest.pinned:
        return s
    return Seg(s.start, s.length, s.rep, None, None, d.forest.pinned[s.leaf])


def _blocks(d: Derivation, entries: list[Entry]) -> tuple[list[tuple[list[list[int]], list[Why]]], list[str]]:
    """Valid block classes (merged where they share classes) and the reasons others were dropped."""
    import networkx as nx

    f = d.forest
    found, dropped = [], []
    for blocks, why in d.blocks:
        leaves = [[p.leaf for lay in blk for p in f.expand(lay)] for blk in blocks]
        bad = _profile_problem(d, leaves)
        if bad:
            dropped.append(f"{why}: block permutations dropped ({bad})")
        else:
            found.append((leaves, why))
    g = nx.Graph()
    for ci, (leaves, _) in enumerate(found):
        for b, blk in enumerate(leaves):
            g.add_node((ci, b))
            for leaf in blk:
                g.add_edge((ci, b), ("leaf", leaf))
    merged: dict[frozenset, list] = {}
    for comp in nx.connected_components(g):
        nodes = sorted(n for n in comp if n[0] != "leaf")
        key = frozenset(ci for ci, _ in nodes)
        merged.setdefault(key, []).append(nodes)
    out = []
    counts = _counts(entries) if merged else []
    for cis, groups in merged.items():
        whys = [w for ci in sorted(cis) for w in [found[ci][1]]]
        sizes = {len(found[ci][0]) for ci in cis}
        if len(sizes) != 1 or len(groups) != sizes.pop() or any(len(n) != len(cis) for n in groups):
            dropped.append(f"{whys[0]}: block permutations dropped (blocks overlap other blocks)")
            continue
        leaves = [list(dict.fromkeys(leaf for ci, b in sorted(nodes) for leaf in found[ci][0][b]))
                  for nodes in sorted(groups, key=lambda n: min(b for _, b in n))]
        bad = _profile_problem(d, leaves) or _closure_problem(entries, counts, cast("list[list[int]]", leaves))
        if bad:                   # (_profile_problem refuses None leaves before _closure_problem sees them)
            dropped.append(f"{whys[0]}: block permutations dropped ({bad})")
        else:
            out.append((cast("list[list[int]]", leaves), whys))
    return out, dropped


def _profile_problem(d: Derivation, leaves: list[list[int | None]]) -> str:
    f = d.forest
    if any(leaf is None or leaf in f.pinned for blk in leaves for leaf in blk):
        return "a block holds pinned units"
    known = [[leaf for leaf in blk if leaf is not None] for blk in leaves]     # every leaf (the check above)
    if len({tuple(f.length[leaf] for leaf in blk) for blk in known}) != 1:
        return "blocks differ in their class sizes"
    flat = [leaf for blk in leaves for leaf in blk]
    if len(set(flat)) != len(flat):
        return "blocks share a class"
    return ""


def _closure_problem(entries: list[Entry], counts: list[dict[int, tuple]], leaves: list[list[int]]) -> str:
    """Every member must hold all blocks' k-th classes alike, or none of them."""
    position = {leaf: k for blk in leaves for k, leaf in enumerate(blk)}
    plain = {(e.param, e.axis): e.segs for e in entries if e.index is None}
    for e in entries:
        if e.index is None:
            continue
        axis, start, stop = e.index
        rows = [s.leaf for s in plain.get((e.param, axis), ()) if start <= s.start < stop]
        if any(r in position for r in rows) and any(s.leaf not in position for s in e.segs):
            return f"the slabs of {e.param} read units that do not move with the blocks"
    for e, c in zip(entries, counts, strict=True):
        for k in {position[leaf] for leaf in c if leaf in position}:
            if len({c.get(blk[k], ()) for blk in leaves}) > 1:
                return f"{e.param} axis {e.axis} holds only some of the blocks"
        tokens = defaultdict(set)
        for s in e.segs:
            if s.leaf in position:
                tokens[position[s.leaf]].add(s.token)
        if any(len(t) > 1 for t in tokens.values()):
            return f"{e.param} axis {e.axis} scales the blocks along different links"
    return ""


def _counts(entries: list[Entry]) -> list[dict[int, tuple]]:
    """Per entry, the reps of each leaf occurrence (indexed entries: none, they hold one block by design)."""
    out = []
    for e in entries:
        c: dict[int, tuple] = defaultdict(tuple)
        if e.index is None:
            for s in e.segs:
                if s.leaf is not None:
                    c[s.leaf] += (s.rep,)
        out.append(dict(c))
    return out


def _uncovered(d: Derivation, entries: list[Entry], shapes: dict[str, tuple[int, ...]]) -> list:
    """(param, axis, reason) for every parameter axis, or part of one, no class moves."""
    out = []
    placed: dict[tuple[str, int], list[Seg]] = defaultdict(list)
    for e in entries:
        placed[(e.param, e.axis)].extend(e.segs)
    for param, shape in shapes.items():
        for axis, size in enumerate(shape):
            if size <= 1:
                continue
            if (param, axis) in d.fixed:
                out.append((param, axis, d.fixed[(param, axis)]))
            elif (param, axis) not in placed:
                out.append((param, axis, "no symmetry contract places this axis"))
            else:
                for s in placed[(param, axis)]:
                    reason = s.note if s.leaf is None else d.forest.pinned.get(s.leaf)
                    if s.leaf is None or reason:
                        out.append((param, axis, f"{s.start}:{s.start + s.length * s.rep} "
                                                 f"{reason or 'tied to a pinned axis'}"))
    return out
