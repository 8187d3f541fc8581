"""Canonical forms and weight matching on a derived symmetry group.

``canonicalize`` picks one representative of a checkpoint's orbit: every scaling link normalised (unit norm
of the weights that create each unit, a positive sum where signs may flip), then the units of every class
sorted by a key that no other class's permutation changes (the sorted values of all their weights), and
the blocks of every block class sorted the same way. Two checkpoints that differ by a group element have
equal canonical forms up to rounding (exactly so when no scaling link feeds another's creating weights,
as in MLPs and BatchNorm networks).

``align`` is Git Re-Basin's weight matching (Ainsworth et al., 2023, Algorithm 2) on the derived classes:
coordinate ascent over classes, each step a linear assignment problem solved by scipy.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from archdsl.errors import Diagnostic, UsageError
from archdsl.symmetry.spec import Entry, GroupElement, Seg, SymmetrySpec

MAX_SWEEPS = 8


def _tensor(state: dict, name: str):
    import torch

    t = state[name]
    return (torch.from_numpy(t) if isinstance(t, np.ndarray) else t).detach().double()


def unit_rows(t, e: Entry, seg) -> np.ndarray:
    """The values of each unit of ``seg`` in member ``e`` of tensor ``t``: an array [units, values]."""
    if e.index is not None:
        t = t.narrow(e.index[0], e.index[1], e.index[2] - e.index[1])
    pos = seg.start + np.arange(seg.length * seg.rep)
    moved = t.movedim(e.axis, 0)[pos].reshape(seg.length, -1)
    return moved.cpu().numpy()


def _scales(spec: SymmetrySpec, state: dict) -> GroupElement:
    """The scaling that normalises every link (in creation order, so earlier links are final first)."""
    by_token: dict[int, list[tuple[Entry, object]]] = defaultdict(list)
    for e in spec.entries:
        if e.exponent == 1 and e.role is None:
            for s in e.segs:
                if s.leaf is not None and s.token is not None and spec.links.get(s.token, "none") != "none":
                    by_token[s.token].append((e, s))
    g = GroupElement()
    for _ in range(MAX_SWEEPS):            # a link's creating weights can depend on later links (residuals)
        step = _sweep(spec, state, by_token)
        if all(np.allclose(f, 1, rtol=1e-13, atol=0) for f in step.scales.values()):
            break
        state = spec.apply(state, step)
        g = spec.compose(step, g)
    return g


def _sweep(spec: SymmetrySpec, state: dict, by_token: dict) -> GroupElement:
    """One pass over the links in creation order, each normalised given the ones before."""
    g = GroupElement()
    for token in sorted(by_token):
        kind = spec.links[token]
        parts: dict[int, list[np.ndarray]] = defaultdict(list)
        for e, s in by_token[token]:
            parts[s.leaf].append(unit_rows(_tensor(state, e.param), e, s))
        step = GroupElement()
        for leaf, rows in parts.items():
            values = np.concatenate(rows, axis=1)
            factor = np.ones(len(values))
            if kind in ("gl", "any", "positive"):       # GL links: their diagonal part
                norm = np.linalg.norm(values, axis=1)
                factor = np.where(norm > 0, 1 / np.where(norm > 0, norm, 1), 1.0)
            if kind in ("gl", "any", "sign"):
                factor = factor * np.where(values.sum(axis=1) < 0, -1.0, 1.0)
            step.scales[(token, leaf)] = factor
        state = spec.apply(state, step, keep=lambda e, t=token: any(s.token == t for s in e.segs))
        g = spec.compose(step, g)
    return g


def _keys(spec: SymmetrySpec, state: dict) -> dict[int, list[tuple]]:
    """Per leaf, a key per unit that other classes' permutations leave unchanged."""
    parts: dict[int, list[np.ndarray]] = defaultdict(list)
    for e in spec.entries:
        t = _tensor(state, e.param)
        for s in e.segs:
            if s.leaf is not None:
                parts[s.leaf].append(np.sort(unit_rows(t, e, s), axis=1))
    return {leaf: [tuple(np.round(np.concatenate([r[i] for r in rows]), 12)) for i in range(len(rows[0]))]
            for leaf, rows in parts.items()}


def canonical_element(spec: SymmetrySpec, state: dict) -> GroupElement:
    """The group element that takes ``state`` to its canonical form."""
    scale = _scales(spec, state)
    scaled = spec.apply(state, scale)
    keys = _keys(spec, scaled)
    perm = GroupElement()
    for b in spec.block_classes:
        block_key = [tuple(k for cid in blk for k in sorted(keys[spec.leaf_of[cid]])) for blk in b.blocks]
        perm.blocks[b.id] = _ranks(block_key)
    tau = spec._tau(perm)
    for c in spec.classes:
        leaf = spec.leaf_of[c.id]
        perm.perms[tau.get(leaf, leaf)] = _ranks(keys[leaf])     # keyed by where the class's units go
    return spec.compose(perm, scale)


def _ranks(keys: list) -> np.ndarray:
    """The permutation that moves the item ranked r-th (by key) to position r."""
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    p = np.empty(len(keys), dtype=np.int64)
    p[order] = np.arange(len(keys))
    return p


def canonicalize(spec: SymmetrySpec, state: dict) -> dict:
    """``state`` in canonical form (sorted hidden units, normalised scales, fixed signs)."""
    return spec.apply(state, canonical_element(spec, state))


def align(spec: SymmetrySpec, a: dict, b: dict, seed: int = 0, max_iter: int = 100) -> tuple[GroupElement, dict]:
    """Permute ``b``'s hidden units to match ``a``'s (weight matching); returns (g, g . b).

    Block classes keep their block order (only units inside classes move); scalings are not searched.
    """
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        raise UsageError(Diagnostic("weight matching needs scipy", hint="pip install 'archdsl[symmetry]'")) from None
    rng = np.random.default_rng(seed)
    members: dict[int, list[tuple[Entry, Seg]]] = defaultdict(list)
    for e in spec.entries:
        for s in e.segs:
            if s.leaf is not None:
                members[s.leaf].append((e, s))
    leaves = [spec.leaf_of[c.id] for c in spec.classes if c.size > 1]
    g = GroupElement(perms={spec.leaf_of[c.id]: np.arange(c.size) for c in spec.classes if c.size > 1})
    plain = {e.param for e in spec.entries} - {e.param for e in spec.entries if e.index is not None}
    for _ in range(max_iter):
        progress = False
        for leaf in rng.permutation(leaves):
            others = GroupElement(perms={k: v for k, v in g.perms.items() if k != leaf})
            params = {e.param for e, _ in members[leaf]}
            moved = {k: _take(spec, b[k], k, others) for k in params & plain}      # the reference's np.take path
            rest = params - plain                                                 # grouped weights: the full action
            moved |= spec.apply({k: b[k] for k in rest}, others, keep=lambda e, p=rest: e.param in p) if rest else {}
            n = len(g.perms[leaf])
            cost = np.zeros((n, n))
            for e, s in members[leaf]:
                cost += unit_rows(_tensor(a, e.param), e, s) @ unit_rows(_tensor(moved, e.param), e, s).T
            rows, cols = linear_sum_assignment(cost, maximize=True)
            new = np.empty(n, dtype=np.int64)
            new[cols] = rows
            old = g.perms[leaf]
            if cost[new, np.arange(n)].sum() > cost[old, np.arange(n)].sum() + 1e-12:
                g.perms[leaf] = new
                progress = True
        if not progress:
            break
    return g, spec.apply(b, g)


def _take(spec: SymmetrySpec, t, param: str, g: GroupElement):
    """``t`` with the permutations of ``g`` on each axis (no block structure, no slabs)."""
    from archdsl.symmetry.act import src_index

    out = _tensor({param: t}, param).numpy()
    done: set[int] = set()
    for e in spec.entries:
        if e.param == param and e.index is None and e.axis not in done:
            done.add(e.axis)
            src = src_index(e.segs, e.segs, g, {}, out.shape[e.axis])
            out = np.take(out, src, axis=e.axis)
    import torch

    return torch.from_numpy(np.ascontiguousarray(out))


def interpolate(a: dict, b: dict, t: float) -> dict:
    """(1 - t) a + t b for floating-point tensors (others from ``a``)."""
    out = {}
    for k, va in a.items():
        vb = b[k]
        floating = va.dtype.kind == "f" if isinstance(va, np.ndarray) else va.is_floating_point()
        out[k] = (1 - t) * va + t * vb if floating else va
    return out
