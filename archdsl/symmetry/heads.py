"""Head splits: a permutable axis reshaped into (index axes..., units) becomes a *stack* of chunks.

``reshape(x, (B, T, heads, d))`` cuts the channel layout into ``heads`` chunks of ``d`` units: which units
the new last axis holds depends on the head index, which a per-axis layout cannot say. So the two axes
carry *markers* (pinned-looking pieces whose note names the stack) and the chunks live here. Every op that
reads a marker is handled by the rules below, chunk by chunk, or the stack is *killed* (its chunks pinned:
what the derivation did before heads were understood, always sound):

- axis moves (transpose, permute) carry markers along;
- elementwise ops without parameters (scaling, softmax, activations) run once per chunk;
- split/slice/select along the units cut every chunk; ``select`` along an index axis keeps those chunks;
- a matrix product (or attention) contracting two stacks' units ties their chunks head by head;
- merging (index axes..., units) back into one axis gives the chunks one after the other.

Index axes that meet only one another (q, k and v's heads in the batch axes of the products) are linked;
each linked set no op broke becomes a block class: heads permuted as wholes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from archdsl.symmetry.layout import Forest, Layout, Piece, Why

if TYPE_CHECKING:
    from archdsl.symmetry.walk import Context, Derivation

MARK = "\x00heads:"
UNITS = -1                       # marker axis number of a stack's unit axis


@dataclass
class Stack:
    """Chunks of one split, keyed by the positions of its remaining index axes."""

    root: int                                  # the split it came from
    axes: tuple[int, ...]                      # root index axis of each remaining index axis
    sizes: tuple[int, ...]
    unit: int
    chunks: dict[tuple[int, ...], Layout]
    alive: bool = True


@dataclass
class Heads:
    """Every stack of a derivation, which root index axes are linked, and which are broken."""

    stacks: list[Stack] = field(default_factory=list)
    why: dict[int, Why] = field(default_factory=dict)                 # root -> the reshape that split it
    parent: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    broken: set[tuple[int, int]] = field(default_factory=set)

    # -- stacks and markers ---------------------------------------------------------------------
    def add(self, stack: Stack) -> int:
        """Register a stack; its id."""
        self.stacks.append(stack)
        return len(self.stacks) - 1

    def markers(self, sid: int) -> list[Layout]:
        """The marker layouts of a stack: its index axes, then its unit axis."""
        s = self.stacks[sid]
        return [*(marker(sid, j, n) for j, n in enumerate(s.sizes)), marker(sid, UNITS, s.unit)]

    def split(self, ctx: Context, a: Layout, sizes: list[int]) -> list[Layout]:
        """Cut ``a`` into chunks for a reshape into ``sizes`` (all > 1); marker layouts for the new axes."""
        unit = sizes[-1]
        chunks = {}
        for flat, key in enumerate(itertools.product(*(range(n) for n in sizes[:-1]))):
            chunks[key] = ctx.sub(a, flat * unit, (flat + 1) * unit)
        root = len(self.stacks)
        self.why[root] = ctx.why("blocked", f"split into {' x '.join(map(str, sizes))}")
        sid = self.add(Stack(root, tuple(range(len(sizes) - 1)), tuple(sizes[:-1]), unit, chunks))
        return self.markers(sid)

    def kill(self, forest: Forest, why: Why, sid: int, reason: str) -> None:
        """Give up on a stack: pin its chunks and break its index axes."""
        s = self.stacks[sid]
        if s.alive:
            s.alive = False
            for chunk in s.chunks.values():
                forest.pin_layout(chunk, reason, why)
        for j in s.axes:
            self.broken.add((s.root, j))

    def link(self, a: tuple[int, int], b: tuple[int, int]) -> None:
        """Index axes that must be permuted together."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def find(self, k: tuple[int, int]) -> tuple[int, int]:
        """The representative of an index axis."""
        while self.parent.get(k, k) != k:
            k = self.parent[k]
        return k

    def key(self, sid: int, j: int) -> tuple[int, int]:
        """The root index axis of a stack's index axis ``j``."""
        s = self.stacks[sid]
        return (s.root, s.axes[j])

    # -- per op -----------------------------------------------------------------------------------
    def derive(self, contract: Any, op: Any, ctx: Context) -> list[list[Layout]]:
        """Output layouts of an op some of whose inputs carry markers."""
        from archdsl.symmetry import contract as C

        rules = ((C.Moved, lambda: contract.derive(op, ctx)),
                 (C.Cut, lambda: self._cut(contract, op, ctx)),
                 (C.Reshaped, lambda: self._reshape(ctx)),
                 (C.Contraction, lambda: self._contract(ctx, attention=False)),
                 (C.AttentionCore, lambda: self._contract(ctx, attention=True, causal=getattr(op, "is_causal", False))),
                 (C.Pointwise, lambda: self._pointwise(contract, op, ctx)),
                 (C.Broadcast, lambda: self._pointwise(contract, op, ctx)))
        for kind, rule in rules:
            if type(contract) is kind:
                out = rule()
                if out is not None:
                    return out
                break
        return self._give_up(contract, op, ctx, f"{op.name} reads a head split this derivation cannot follow")

    def _give_up(self, contract: Any, op: Any, ctx: Context, reason: str) -> list[list[Layout]]:
        """Kill every stack the op reads and run its contract on plain pinned axes."""
        for sid in {m[0] for lay in ctx.inputs for a in lay if (m := read(a))}:
            self.kill(ctx.forest, ctx.why("pinned", reason), sid, reason)
        ctx.inputs = [[plain(a) for a in lay] for lay in ctx.inputs]
        return contract.derive(op, ctx)

    def _cut(self, contract: Any, op: Any, ctx: Context) -> list[list[Layout]] | None:
        x, t = ctx.inputs[0], ctx.in_types[0]
        dim = op.dim % t.rank
        m = read(x[dim])
        if m is None:
            return contract.derive(op, ctx)          # markers on other axes pass through unchanged
        sid, j = m
        if j == UNITS and hasattr(op, "index"):                      # one unit of every head: pinned
            s = self.stacks[sid]
            i = op.index % s.unit
            for chunk in s.chunks.values():
                ctx.pin(ctx.sub(chunk, i, i + 1), f"position {i} of every head is selected")
            return [[a for k, a in enumerate(x) if k != dim]]
        if j == UNITS:
            return self._per_chunk(contract, op, ctx)
        if not hasattr(op, "index") or sid != self._only_stack(x):
            return None
        s = self.stacks[sid]
        i = op.index % s.sizes[j]
        self.broken.add(self.key(sid, j))
        kept = {k[:j] + k[j + 1:]: c for k, c in s.chunks.items() if k[j] == i}
        new = self.add(Stack(s.root, s.axes[:j] + s.axes[j + 1:], s.sizes[:j] + s.sizes[j + 1:], s.unit, kept))
        return [[self._remark(a, new, drop=j) for k, a in enumerate(x) if k != dim]]

    def _remark(self, layout: Layout, sid: int, drop: int) -> Layout:
        """A marker of the stack a selection came from, renumbered for the new stack ``sid``."""
        m = read(layout)
        if m is None:
            return layout
        j = m[1] if m[1] == UNITS or m[1] < drop else m[1] - 1
        return marker(sid, j, layout[0].length)

    def _only_stack(self, x: list[Layout]) -> int | None:
        """The one stack whose markers a tensor carries (None when several)."""
        sids = {m[0] for a in x if (m := read(a))}
        return sids.pop() if len(sids) == 1 else None

    def _per_chunk(self, contract: Any, op: Any, ctx: Context) -> list[list[Layout]] | None:
        """Run a parameter-free contract once per chunk; the outputs' unit axes form new stacks."""
        out_rank = ctx.out_types[0].rank
        if any(t.rank != out_rank for t in ctx.out_types):
            return None
        unit_pos, entries = None, {}                      # input -> (stack, position -> index axis)
        for n, (lay, t) in enumerate(zip(ctx.inputs, ctx.in_types, strict=True)):
            marks = {k + out_rank - t.rank: m for k, a in enumerate(lay) if (m := read(a))}
            if not marks:
                continue
            sids = {m[0] for m in marks.values()}
            units = [p for p, m in marks.items() if m[1] == UNITS]
            if len(sids) != 1 or len(units) != 1 or unit_pos not in (None, units[0]):
                return None
            sid, unit_pos = sids.pop(), units[0]
            at = {p: m[1] for p, m in marks.items() if m[1] != UNITS}
            if len(at) != len(self.stacks[sid].sizes):
                return None
            entries[n] = (sid, at)
        if unit_pos is None:
            return None
        first_n = min(entries)
        s0, at0 = entries[first_n]
        for sid, at in entries.values():
            if set(at) != set(at0):
                return None
            for p, j in at.items():
                self.link(self.key(s0, at0[p]), self.key(sid, j))
        first, inputs = self.stacks[s0], ctx.inputs
        chunks: list[dict[tuple[int, ...], Layout]] = [{} for _ in ctx.out_types]
        outs: list[list[Layout]] = []
        for key in first.chunks:
            value = {p: key[j] for p, j in at0.items()}               # position -> head index
            ctx.inputs = [lay if n not in entries else
                          [self._chunk(entries[n], value) if (r := read(a)) and r[1] == UNITS else a for a in lay]
                          for n, lay in enumerate(inputs)]
            outs = contract.derive(op, ctx)
            for o, out in enumerate(outs):
                chunks[o][key] = out[unit_pos]
        ctx.inputs = inputs
        result = []
        for o, out in enumerate(outs):
            sid = self.add(Stack(first.root, first.axes, first.sizes, int(_size(out[unit_pos])), chunks[o]))
            result.append([marker(sid, UNITS, self.stacks[sid].unit) if p == unit_pos else
                           marker(sid, at0[p], first.sizes[at0[p]]) if p in at0 else a for p, a in enumerate(out)])
        return result

    def _chunk(self, entry: tuple[int, dict[int, int]], value: dict[int, int]) -> Layout:
        """The chunk of a stack at the head indices ``value`` (position -> index)."""
        sid, at = entry
        key = [0] * len(at)
        for p, j in at.items():
            key[j] = value[p]
        return self.stacks[sid].chunks[tuple(key)]

    def _pointwise(self, contract: Any, op: Any, ctx: Context) -> list[list[Layout]] | None:
        if ctx.params:
            return None
        if any(read(a) == (m[0], UNITS) for lay in ctx.inputs for a in lay if (m := read(a))):
            return self._per_chunk(contract, op, ctx)
        return self._index_only(contract, op, ctx)

    def _index_only(self, contract: Any, op: Any, ctx: Context) -> list[list[Layout]] | None:
        """Elementwise ops on tensors that carry index axes only (attention scores)."""
        out_t = ctx.out_types[0]
        keep: dict[int, Layout] = {}
        for i, size in enumerate(out_t.shape):
            aligned = [lay[j] for lay, t in zip(ctx.inputs, ctx.in_types, strict=True)
                       if (j := i - (out_t.rank - t.rank)) >= 0 and t.shape[j] == size]
            marks = [read(a) for a in aligned]
            if not any(marks):
                continue
            found = [m for m in marks if m]
            if len(found) != len(marks):            # a head axis meets another axis: heads stay in place
                for m in found:
                    self.broken.add(self.key(*m))
            for m in found[1:]:
                self.link(self.key(*found[0]), self.key(*m))
            keep[i] = marker(found[0][0], found[0][1], size)
        outs = contract.derive(op, ctx)
        return [[keep.get(i, a) for i, a in enumerate(out)] for out in outs]

    def _contract(self, ctx: Context, attention: bool, causal: bool = False) -> list[list[Layout]] | None:
        """a @ b (or attention q, k, v): contracted units tie chunk by chunk; batch axes link heads."""
        parts = self._attention_operands(ctx, causal) if attention else self._product_operands(ctx)
        if parts is None:
            return None
        pairs, operands, rows, cols = parts
        batch = self._batch(ctx, operands)
        if batch is None:
            return None
        left, right = read(pairs[0]), read(pairs[1])
        if (left is None) != (right is None):
            return None
        if left is None or right is None:             # both (the line above)
            inner = ctx.tie(pairs[0], pairs[1], "contracted by a matrix product")
            ctx.constrain(inner, "none", "a per-unit scaling of both operands does not cancel")
        elif left[1] != UNITS or right[1] != UNITS or not self._tie_chunks(ctx, left[0], right[0]):
            return None
        return self._owned(batch, rows, cols)

    @staticmethod
    def _product_operands(ctx: Context) -> tuple | None:
        (a, b), (ta, tb) = ctx.inputs, ctx.in_types
        return (a[-1], b[-2]), [(a, ta), (b, tb)], a[-2], b[-1]

    @staticmethod
    def _attention_operands(ctx: Context, causal: bool) -> tuple | None:
        q, k, v = ctx.inputs
        if read(k[-2]) or read(v[-2]) or read(q[-2]):
            return None
        kv = ctx.tie(k[-2], v[-2], "keys and values share positions")
        for lay in (kv, q[-2]):
            ctx.constrain(lay, "none", "scores pass through a softmax")
            if causal:
                ctx.pin(lay, "the causal mask orders positions")
        return (q[-1], k[-1]), list(zip(ctx.inputs, ctx.in_types, strict=True)), q[-2], v[-1]

    def _batch(self, ctx: Context, operands: list) -> list[Layout] | None:
        """The output's batch axes: plain ones tie; head axes link (a head axis meeting another pins it)."""
        out_t = ctx.out_types[0]
        batch: list[Layout] = []
        for i in range(out_t.rank - 2):
            aligned = [lay[j] for lay, t in operands
                       if (j := i - (out_t.rank - t.rank)) >= 0 and t.shape[j] == out_t.shape[i]]
            found = [m for x in aligned if (m := read(x))]
            if not found:
                lay = aligned[0] if aligned else ctx.pinned(out_t.shape[i])
                for other in aligned[1:]:
                    lay = ctx.tie(lay, other, "matrix-product batch axes")
                ctx.constrain(lay, "none", "both operands scale")
                batch.append(lay)
                continue
            if any(m[1] == UNITS for m in found):
                return None
            for x in aligned:
                if not read(x):                  # a head axis meets another axis: heads stay in place
                    ctx.pin(x, "batched with heads")
                    self.broken.update(self.key(*m) for m in found)
            for m in found[1:]:
                self.link(self.key(*found[0]), self.key(*m))
            batch.append(marker(found[0][0], found[0][1], out_t.shape[i]))
        return batch

    def _owned(self, batch: list[Layout], rows: Layout, cols: Layout) -> list[list[Layout]] | None:
        """The output, its head axes renamed after the stack whose units it carries (if any)."""
        units = [m for m in (read(rows), read(cols)) if m]
        if any(m[1] != UNITS for m in units) or len(units) > 1:
            return None
        if not units:
            return [[*batch, rows, cols]]
        owner = units[0][0]
        if len(self.stacks[owner].sizes) != sum(1 for lay in batch if read(lay)):
            return None
        fixed = []
        for lay in batch:
            m = read(lay)
            if m:
                j = self._same_axis(owner, m)
                if j is None:
                    return None
                lay = marker(owner, j, lay[0].length)
            fixed.append(lay)
        return [[*fixed, rows, cols]]

    def _same_axis(self, sid: int, m: tuple[int, int]) -> int | None:
        """The index axis of stack ``sid`` linked with marker ``m``."""
        target = self.find(self.key(*m))
        for j in range(len(self.stacks[sid].sizes)):
            if self.find(self.key(sid, j)) == target:
                return j
        return None

    def _tie_chunks(self, ctx: Context, sa: int, sb: int) -> bool:
        """Tie two stacks' chunks head by head (their index axes must be linked one to one)."""
        A, B = self.stacks[sa], self.stacks[sb]
        if len(A.sizes) != len(B.sizes) or A.unit != B.unit:
            return False
        to_b = []
        for j in range(len(A.sizes)):
            jb = self._same_axis(sb, (sa, j))
            if jb is None:
                return False
            to_b.append(jb)
        for key, chunk in A.chunks.items():
            kb = [0] * len(key)
            for j, v in enumerate(key):
                kb[to_b[j]] = v
            tied = ctx.tie(chunk, B.chunks[tuple(kb)], "contracted head by head")
            ctx.constrain(tied, "none", "a per-unit scaling of both operands does not cancel")
        return True

    def _reshape(self, ctx: Context) -> list[list[Layout]] | None:
        from archdsl.symmetry.walk import _groups

        x, ins, outs = ctx.inputs[0], ctx.in_types[0].shape, ctx.out_types[0].shape
        groups = _groups(ins, outs)
        if groups is None:
            return None
        result: list[Layout] = []
        for gi, go in groups:
            marks = [read(x[i]) for i in gi]
            if not any(marks):
                result += ctx.reshape_group(x, gi, [outs[j] for j in go])
                continue
            wide_in = [i for i in gi if ins[i] != 1]
            wide_out = [j for j in go if outs[j] != 1]
            if len(wide_out) != 1 or any(ins[i] == 1 and read(x[i]) for i in gi):
                return None
            if len(wide_in) == 1:                                    # the axis passes unchanged
                result += [x[wide_in[0]] if j in wide_out else ctx.pinned(1) for j in go]
                continue
            merged = self._merge(x, wide_in)
            if merged is None:
                return None
            result += [merged if j in wide_out else ctx.pinned(1) for j in go]
        return [result]

    def _merge(self, x: list[Layout], axes: list[int]) -> Layout | None:
        """(index axes in order, units) merged back: the chunks one after the other."""
        marks = [read(x[i]) for i in axes]
        last = marks[-1]
        sid = last[0] if last else None
        if last is None or sid is None or last[1] != UNITS:
            return None
        s = self.stacks[sid]
        if [m for m in marks[:-1]] != [(sid, j) for j in range(len(s.sizes))] or not s.alive:
            return None
        out: list[Piece] = []
        for key in sorted(s.chunks):
            out += s.chunks[key]
        return tuple(out)

    # -- the end ----------------------------------------------------------------------------------
    def finish(self, d: Derivation, outputs: list[list[Layout]], why: Why) -> None:
        """Kill stacks that reach a graph output; record each unbroken set of linked heads as a block."""
        for lay in outputs:
            for a in lay:
                if (m := read(a)):
                    self.kill(d.forest, why, m[0], "a head split reaches a graph output")
        classes: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for root, s in enumerate(self.stacks):
            if s.root != root:
                continue
            for j in s.axes:
                classes.setdefault(self.find((root, j)), []).append((root, j))
        for members in classes.values():
            if any(m in self.broken for m in members):
                continue
            sizes = {self.stacks[r].sizes[self.stacks[r].axes.index(j)] for r, j in members}
            if len(sizes) != 1:
                continue
            h = sizes.pop()
            blocks = []
            for i in range(h):
                chunks = [c for r, j in sorted(members) for key, c in sorted(self.stacks[r].chunks.items())
                          if key[self.stacks[r].axes.index(j)] == i]
                blocks.append(_distinct(d.forest, chunks))
            r0 = min(r for r, _ in members)
            d.blocks.append((blocks, self.why[r0]))


def marker(sid: int, j: int, size: Any) -> Layout:
    """The layout of a stack's axis ``j`` (``UNITS``: its unit axis)."""
    return (Piece(None, size, note=f"{MARK}{sid}:{j}"),)


def read(layout: Layout) -> tuple[int, int] | None:
    """(stack, axis) when ``layout`` is a marker."""
    if len(layout) != 1 or not layout[0].note.startswith(MARK):
        return None
    sid, j = layout[0].note[len(MARK):].split(":")
    return int(sid), int(j)


def plain(layout: Layout) -> Layout:
    """A marker as a plain pinned axis."""
    return (Piece(None, layout[0].length, note="a head split"),) if read(layout) else layout


def involved(inputs: list[list[Layout]]) -> bool:
    """Whether any input axis is a marker."""
    return any(read(a) for lay in inputs for a in lay)


def _distinct(forest: Forest, chunks: list[Layout]) -> list[Layout]:
    """A head's classes, each once (q and k's units of a head are one class)."""
    out: list[Layout] = []
    seen: set[int] = set()
    for chunk in chunks:
        for p in forest.expand(chunk):
            if p.leaf is None:
                out.append((p,))
            elif forest.find(p.leaf) not in seen:
                seen.add(forest.find(p.leaf))
                out.append((p,))
    return out


def _size(layout: Layout) -> Any:
    total: Any = 0
    for p in layout:
        total = total + p.size
    return total
