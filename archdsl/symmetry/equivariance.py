"""Equivariance of rewrites: a pass T must commute with the symmetry group, T(g . theta) = rho(g) . T(theta).

``rho`` maps an element of the input graph's group to the output graph's: each output class takes the
permutation of the input class it shares a member with (a parameter axis range that the rewrite kept under
its name: fold-bn keeps ``conv.weight``, merge-branches keeps the surviving branch's names), and each output
block class the block permutation of its counterpart. A rewrite that leaves an output class with no
counterpart, or pins a class that was free before, loses symmetry: :func:`check_pass` reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from archdsl.ir.graph import Graph
from archdsl.symmetry.assemble import derive
from archdsl.symmetry.spec import GroupElement, SymmetrySpec


@dataclass
class Equivariance:
    """What checking one pass on one graph found."""

    pass_name: str
    changed: bool
    bitwise: bool = True
    max_error: float = 0.0                   # largest |T(g.theta) - rho(g).T(theta)| / max|T(theta)|, per tensor
    diagnostics: list[str] = field(default_factory=list)

    def ok(self, rtol: float = 1e-10) -> bool:
        """Equivariant within ``rtol`` and no symmetry lost."""
        return self.max_error <= rtol and not self.diagnostics


def correspondence(before: SymmetrySpec, after: SymmetrySpec) -> tuple[dict[str, str], list[str]]:
    """Output class id -> input class id (by shared members), and diagnostics for what has none."""
    where: dict[tuple, str] = {}
    for c in before.classes:
        for m in c.members:
            where[(m.param, m.axis, m.start, m.stop, m.rep, m.index)] = c.id
        for v in before.on_values.get(c.id, ()):
            where[v] = c.id
    pinned_before = {(m.param, m.axis, m.start, m.stop) for c in before.pinned for m in c.members}
    out, problems = {}, []
    for c in after.classes:
        keys: list[tuple] = [(m.param, m.axis, m.start, m.stop, m.rep, m.index) for m in c.members]
        keys += after.on_values.get(c.id, [])             # values a rewrite keeps (the merged block's output)
        found = {where[k] for k in keys if k in where}
        if len(found) == 1:
            out[c.id] = found.pop()
        elif found:
            problems.append(f"class {c.id} of the rewritten graph joins the classes {sorted(found)}")
        else:
            problems.append(f"class {c.id} of the rewritten graph ({c.size} units) has no counterpart before")
    free_before = {(m.param, m.axis, m.start, m.stop) for c in before.classes for m in c.members}
    for c in after.pinned:
        lost = [m for m in c.members if (m.param, m.axis, m.start, m.stop) in free_before - pinned_before]
        if lost:
            problems.append(f"the rewrite pins {lost[0]} ({c.reason}), which could move before: symmetry lost")
    return out, problems


def rho(before: SymmetrySpec, after: SymmetrySpec, g: GroupElement) -> tuple[GroupElement, list[str]]:
    """The permutation part of ``g`` carried to the rewritten graph's group."""
    mapping, problems = correspondence(before, after)
    out = GroupElement()
    for cid, src in mapping.items():
        p = g.perms.get(before.leaf_of[src])
        if p is not None:
            out.perms[after.leaf_of[cid]] = p
    by_classes = {tuple(tuple(blk) for blk in b.blocks): b.id for b in before.block_classes}
    for b in after.block_classes:
        key = tuple(tuple(mapping.get(c, "") for c in blk) for blk in b.blocks)
        if key in by_classes:
            if by_classes[key] in g.blocks:
                out.blocks[b.id] = g.blocks[by_classes[key]]
        else:
            problems.append(f"block class {b.id} of the rewritten graph has no counterpart before")
    return out, problems


def check_pass(p, graph: Graph, state: dict, seed: int = 0, mutate=None) -> Equivariance:
    """Run pass ``p`` on ``state`` and on g . state (g: a random permutation element) and compare with rho.

    ``mutate(result_state)`` changes the pass's output weights before the comparison (a negative control:
    an order-dependent change must be caught).
    """
    import torch

    from archdsl.ir.weights import Weights

    before = derive(graph)
    g = before.sample(seed, kinds=("perm", "block"))
    plain = p.apply(graph, Weights(dict(state)))
    moved = p.apply(graph, Weights(before.apply(state, g)))
    report = Equivariance(p.name, plain.changed)
    if plain.graph != moved.graph:
        report.diagnostics.append("the rewritten graph depends on the weights' order")
        return report
    after = derive(plain.graph)
    g_out, problems = rho(before, after, g)
    report.diagnostics += problems
    t_plain, t_moved = plain.weights.state_dict(), moved.weights.state_dict()
    if mutate is not None:
        t_plain, t_moved = mutate(dict(t_plain)), mutate(dict(t_moved))
    expected = after.apply(t_plain, g_out)
    for k, v in t_moved.items():
        if not v.is_floating_point():
            continue
        scale = float(expected[k].abs().max()) or 1.0
        err = float((v - expected[k]).abs().max()) / scale
        report.max_error = max(report.max_error, err)
        report.bitwise = report.bitwise and torch.equal(v, expected[k])
    return report


def ramp(state: dict) -> dict:
    """A negative control: add a ramp over the first axis of every bias (it depends on the units' order)."""
    out = dict(state)
    for k, v in state.items():
        if k.endswith("bias") and v.is_floating_point() and v.numel() > 1:
            out[k] = v + torch_arange_like(v)
    return out


def torch_arange_like(v):
    """0, 1e-3, 2e-3, ... shaped like ``v``'s first axis."""
    import torch

    return torch.as_tensor(np.arange(v.shape[0]) * 1e-3, dtype=v.dtype).reshape(-1, *([1] * (v.dim() - 1)))
