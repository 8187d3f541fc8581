"""Views of a SymmetrySpec: text, JSON, a Git Re-Basin PermutationSpec, NFN/DWSNets-style layer descriptions.

Git Re-Basin's ``PermutationSpec`` names one permutation per axis (``axes_to_perm[param][axis]``) and lists
the axes of each permutation (``perm_to_axes[perm] = [(param, axis), ...]``). An axis that holds several
classes (a concatenation) or repeats each unit (a C x H x W flatten) has no such single name; it is
exported as a list of ``{"perm", "start", "stop", "rep"}`` segments, which a PermutationSpec consumer
that only knows whole axes must treat as unsupported.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from archdsl.errors import Diagnostic
from archdsl.symmetry.spec import BlockClass, Member, SymClass, SymmetrySpec


def _segment(c: SymClass, m: Member) -> dict:
    return {"perm": c.id, "start": m.start, "stop": m.stop, "rep": m.rep}


def rebasin(spec: SymmetrySpec) -> dict:
    """``{"perm_to_axes": ..., "axes_to_perm": ...}`` in Git Re-Basin's form (see the module docstring)."""
    perm_to_axes: dict[str, list] = {}
    segments: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for c in spec.classes:
        if c.size < 2:
            continue
        axes = []
        for m in c.members:
            if m.index is None and (m.param, m.axis) not in axes:
                axes.append((m.param, m.axis))
            if m.index is None and _segment(c, m) not in segments[(m.param, m.axis)]:
                segments[(m.param, m.axis)].append(_segment(c, m))
        perm_to_axes[c.id] = [list(a) for a in axes]
    axes_to_perm: dict[str, list] = {}
    for param, shape in spec.shapes.items():
        row: list = []
        for axis, size in enumerate(shape):
            segs = segments.get((param, axis), [])
            whole = len(segs) == 1 and segs[0]["start"] == 0 and segs[0]["stop"] == size and segs[0]["rep"] == 1
            row.append(segs[0]["perm"] if whole else segs or None)
        axes_to_perm[param] = row
    return {"perm_to_axes": perm_to_axes, "axes_to_perm": axes_to_perm,
            "block_perms": {b.id: b.blocks for b in spec.block_classes}}


def layers(spec: SymmetrySpec) -> dict:
    """NFN / DWSNets-style: every weight with its shape and, per axis, the classes acting on it."""
    out: dict[str, dict] = {}
    for param, shape in spec.shapes.items():
        out[param] = {"shape": list(shape), "axes": [[] for _ in shape]}
    for c in spec.classes:
        for m in c.members:
            entry = {**_segment(c, m), "exponent": m.exponent}
            if m.index:
                entry["slab"] = {"axis": m.index[0], "start": m.index[1], "stop": m.index[2]}
            if entry not in out[m.param]["axes"][m.axis]:
                out[m.param]["axes"][m.axis].append(entry)
    return {"classes": {c.id: {"size": c.size, "scalings": c.scalings, "block": c.block} for c in spec.classes},
            "block_classes": {b.id: b.blocks for b in spec.block_classes}, "weights": out}


def to_json(spec: SymmetrySpec) -> dict:
    """Everything: classes with members and provenance, block classes, pinned classes, uncovered axes."""
    def cls(c: SymClass) -> dict:
        return {"id": c.id, "size": c.size, "kind": c.kind, "scalings": c.scalings, "block": c.block,
                "reason": c.reason or None,
                "members": [{"param": m.param, "axis": m.axis, "start": m.start, "stop": m.stop, "rep": m.rep,
                             "exponent": m.exponent, "slab": list(m.index) if m.index else None} for m in c.members],
                "provenance": [_why(w) for w in c.provenance]}

    def blk(b: BlockClass) -> dict:
        return {"id": b.id, "size": b.size, "blocks": b.blocks, "provenance": [_why(w) for w in b.provenance]}

    return {"model": spec.name, "classes": [cls(c) for c in spec.classes],
            "block_classes": [blk(b) for b in spec.block_classes], "pinned": [cls(c) for c in spec.pinned],
            "uncovered": [{"param": p, "axis": a, "reason": r} for p, a, r in spec.uncovered], "notes": spec.notes}


def _why(w) -> dict:
    return {"verb": w.verb, "op": w.op, "node": w.node, "detail": w.detail,
            "span": w.span.model_dump() if w.span else None}


def text(spec: SymmetrySpec) -> str:
    """A readable summary: one line per class, block class and pinned class."""
    lines = [f"{spec.name}: {len(spec.classes)} classes, {len(spec.block_classes)} block classes, "
             f"{len(spec.pinned)} pinned"]
    for c in spec.classes:
        scal = ", ".join(c.scalings) or "none"
        block = f"  in {c.block}" if c.block else ""
        lines.append(f"  {c.id:<6} {c.size:>5} units  permutations, scaling: {scal:<14} {len(c.members):>3} members"
                     f"{block}  {_origin(c)}")
    for b in spec.block_classes:
        lines.append(f"  {b.id:<6} {b.size:>5} blocks of [{', '.join(b.blocks[0])}]  {b.provenance[0]}")
    for c in spec.pinned:
        lines.append(f"  {c.id:<6} {c.size:>5} units  pinned: {c.reason}")
    reasons = Counter(r.split(" ", 1)[1] if r[:1].isdigit() else r for _, _, r in spec.uncovered)
    if reasons:
        lines.append("fixed axes: " + "; ".join(f"{n} x {r}" for r, n in reasons.most_common()))
    lines += [f"note: {n}" for n in spec.notes]
    return "\n".join(lines)


def _origin(c: SymClass) -> str:
    first = c.provenance[0]
    return f"{first.verb} by {first.op} '{first.node}'" + (f" at {first.span}" if first.span else "")


def explain(spec: SymmetrySpec, cid: str, sources: dict[str, str] | None = None) -> str:
    """The provenance chain of one class, with the source line of every op that created, tied or pinned it."""
    c = spec.find(cid)
    if isinstance(c, BlockClass):
        head = f"{c.id}: {c.size} blocks of [{', '.join(c.blocks[0])}]"
        chain = c.provenance
    else:
        head = f"{c.id}: {c.size} units, " + (f"pinned: {c.reason}" if c.kind == "pinned" else
                                              f"permutations, scaling: {', '.join(c.scalings) or 'none'}")
        head += "\nmembers:\n" + "\n".join(f"  {m}  (scaled ^{m.exponent})" for m in c.members)
        chain = list(c.provenance)
        leaf = spec.leaf_of.get(c.id)
        tokens = sorted({s.token for e in spec.entries for s in e.segs if s.leaf == leaf and s.token is not None})
        for t in tokens:
            chain += [w for w in spec.link_provenance.get(t, []) if w.verb == "constrained"]
    body = [Diagnostic(f"{w.verb} by {w.op} '{w.node}'" + (f": {w.detail}" if w.detail else ""), w.span,
                       severity="note").render(sources) for w in _dedup(chain)]
    return head + "\nwhy:\n" + "\n".join(body)


def _dedup(chain: list) -> list:
    return list(dict.fromkeys(chain))
