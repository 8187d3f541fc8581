"""Derive a graph's weight-space symmetry group by running every op's symmetry contract over it.

One pass in topological order: each value axis gets a layout (leaves and pinned stretches), each op's
contract ties, cuts or creates leaves and records which parameter axes hold them (*members*). Graph
inputs and outputs are pinned. The work is near-linear in the graph: union-find with path halving,
and a cut touches only the layouts that are tied at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archdsl.ir.dims import Dim
from archdsl.ir.graph import Graph, Node
from archdsl.ir.types import TensorType
from archdsl.ops.base import ParamSpec, apply_rules
from archdsl.symmetry.contract import Pinned, concat, retoken
from archdsl.symmetry.heads import Heads, involved
from archdsl.symmetry.layout import Forest, Layout, Piece, Why, layout_size

NO_CONTRACT = "op '{op}' declares no symmetry contract"


@dataclass
class Record:
    """A parameter axis (or a block of it, ``index``) holding a layout, scaled by ``exponent``."""

    param: str
    axis: int
    layout: Layout
    exponent: int
    index: tuple[int, int, int] | None = None          # (other axis, start, stop): only that slab
    role: tuple | None = None                           # ("bn", running_var key, eps)
    node: str = ""


@dataclass
class Derivation:
    """Everything the walk found, before it is assembled into a SymmetrySpec."""

    graph: Graph
    forest: Forest = field(default_factory=Forest)
    records: list[Record] = field(default_factory=list)
    fixed: dict[tuple[str, int], str] = field(default_factory=dict)
    blocks: list[tuple[list[list[Layout]], Why]] = field(default_factory=list)
    shared: dict[tuple[str, int, tuple | None], tuple[str, Layout]] = field(default_factory=dict)
    values: dict[str, list[Layout]] = field(default_factory=dict)     # every value's axis layouts
    heads: Heads = field(default_factory=Heads)                        # axes split into heads


class Context:
    """What a contract sees of one op application: input layouts and types, its parameters, and the
    operations on layouts (all recorded with this op as their provenance)."""

    def __init__(self, d: Derivation, node: Node, inputs: list[list[Layout]], in_types: list[TensorType],
                 params: dict[str, ParamSpec]) -> None:
        self.d, self.node, self.inputs, self.in_types, self.params = d, node, inputs, in_types, params
        self.out_types = list(node.types)
        self.forest = d.forest

    def why(self, verb: str, detail: str = "") -> Why:
        """A provenance entry naming this node."""
        return Why(verb, self.node.module or self.node.name, self.node.op.name, detail, self.node.span)

    def fresh(self, n: int, detail: str, kind: str = "any", token: int | None = None) -> Layout:
        """A new class of ``n`` units on a new scaling link (or on ``token``: the blocks of one block class
        share their links, so that permuting blocks maps links onto themselves)."""
        why = self.why("created", detail)
        return (Piece(self.forest.leaf(n, why), n, 1, self.forest.token(kind, why) if token is None else token),)

    def token(self, kind: str, detail: str) -> int:
        """A new scaling link."""
        return self.forest.token(kind, self.why("created", detail))

    @staticmethod
    def pinned(size: Dim, note: str = "") -> Layout:
        """A pinned axis."""
        return (Piece(None, size, note=note),)

    def tie(self, a: Layout, b: Layout, detail: str) -> Layout:
        """One layout from two (refining both)."""
        return self.forest.tie(a, b, self.why("tied", detail))

    def sub(self, layout: Layout, start: int, stop: int) -> Layout:
        """Positions [start, stop), cutting classes there."""
        return self.forest.sub(layout, start, stop, self.why("cut", f"at {start} and {stop}"))

    def cut(self, layout: Layout, sizes: list[int]) -> list[Layout]:
        """Consecutive pieces of the given sizes."""
        edges, at = [], 0
        for size in sizes[:-1]:
            at += size
            edges.append(at)
        return self.forest.parts(layout, edges, self.why("cut", f"into {len(sizes)} parts"))

    def pin(self, layout: Layout, reason: str) -> None:
        """No symmetry may move these units, nor scale them."""
        self.forest.pin_layout(layout, reason, self.why("pinned", reason))

    def constrain(self, layout: Layout, kind: str, detail: str) -> None:
        """Restrict the scaling links of a layout."""
        why = self.why("constrained", detail)
        for p in layout:
            if p.token is not None:
                self.forest.constrain(p.token, kind, why)

    def retoken(self, layout: Layout, kind: str, detail: str) -> Layout:
        """The same units on a new scaling link."""
        return retoken(layout, self.forest.token(kind, self.why("created", detail)))

    def param_key(self, local: str) -> str:
        """The graph's name of a parameter of this node."""
        return self.node.params[local]

    def member(self, local: str, axis: int, layout: Layout, exponent: int, index=None, role=None) -> None:
        """Parameter ``local``'s axis ``axis`` holds ``layout`` (a parameter shared by several nodes ties)."""
        key = (self.param_key(local), axis, index)
        if key in self.d.shared and self.d.shared[key][0] != self.node.name:
            layout = self.tie(self.d.shared[key][1], layout, "a shared parameter")
        self.d.shared.setdefault(key, (self.node.name, layout))
        self.d.records.append(Record(key[0], axis, layout, exponent, index, role, self.node.name))

    def fixed(self, local: str, axes, reason: str) -> None:
        """Parameter axes no symmetry moves, with the reason."""
        for a in axes:
            self.d.fixed[(self.param_key(local), a)] = reason

    def block(self, blocks: list[list[Layout]], detail: str) -> None:
        """Whole blocks (tuples of layouts of equal profile) may also be permuted among themselves."""
        self.d.blocks.append((blocks, self.why("blocked", detail)))

    def reshape(self, x: list[Layout], ins: tuple, outs: tuple) -> list[Layout]:
        """Layouts after a view with another shape (see :class:`~archdsl.symmetry.contract.Reshaped`)."""
        groups = _groups(ins, outs)
        if groups is None:
            for lay in x:
                self.pin(lay, "a reshape this derivation cannot follow")
            return [self.pinned(d) for d in outs]
        result: list[Layout] = []
        for gi, go in groups:
            result += self.reshape_group(x, gi, [outs[j] for j in go])
        return result

    def reshape_group(self, x: list[Layout], gi: list[int], sizes: list[Dim]) -> list[Layout]:
        """One factor group of a reshape: input axes ``gi`` merged, then split into ``sizes``."""
        merged = x[gi[0]] if gi else self.pinned(1)
        for i in gi[1:]:
            merged = self._merge(merged, x[i])
        return self._split(merged, sizes)

    def _merge(self, a: Layout, b: Layout) -> Layout:
        sa, sb = layout_size(a), layout_size(b)
        if sb == 1:
            self.pin(b, "merged away")
            return a
        if sa == 1:
            self.pin(a, "merged away")
            return b
        if all(p.leaf is None for p in b):
            return tuple(Piece(p.leaf, p.length if p.leaf is not None else p.length * sb,
                               p.rep * sb if p.leaf is not None else 1, p.token, p.note) for p in a)
        self.pin(concat([a, b]), "merged into an axis whose inner part is permutable")
        return self.pinned(sa * sb)

    def _split(self, a: Layout, sizes: list[Dim]) -> list[Layout]:
        if len(sizes) == 1:
            return [a]
        big = [i for i, s in enumerate(sizes) if s != 1]
        if len(big) <= 1:
            return [a if i in big else self.pinned(1) for i in range(len(sizes))]
        inner: Dim = 1
        for s in sizes[1:]:
            inner = inner * s
        if all(p.leaf is None for p in a):
            return [self.pinned(s) for s in sizes]
        if isinstance(inner, int) and all(p.leaf is not None and isinstance(p.rep, int) and p.rep % inner == 0
                                          for p in a):
            head = tuple(Piece(p.leaf, p.length, p.rep // inner, p.token) for p in a)
            return [head, *[self.pinned(s) for s in sizes[1:]]]
        if all(isinstance(s, int) and s > 1 for s in sizes) and all(p.rep == 1 for p in a):
            return self.d.heads.split(self, a, [s for s in sizes if isinstance(s, int)])  # heads: chunks
        self.pin(a, "split into several axes")
        return [self.pinned(s) for s in sizes]


def _groups(ins: tuple, outs: tuple) -> list[tuple[list[int], list[int]]] | None:
    """Consecutive axis groups of equal size product (a reshape's factor structure), or None."""
    i = j = 0
    out: list[tuple[list[int], list[int]]] = []
    while i < len(ins) and j < len(outs):
        found = None
        for total in range(2, len(ins) - i + len(outs) - j + 1):
            for k in range(i + 1, min(len(ins), i + total - 1) + 1):
                m = j + total - (k - i)
                if j < m <= len(outs) and _prod(ins[i:k]) == _prod(outs[j:m]):
                    found = (k, m)
                    break
            if found:
                break
        if found is None:
            return None
        out.append((list(range(i, found[0])), list(range(j, found[1]))))
        i, j = found
    if any(d != 1 for d in ins[i:]) or any(d != 1 for d in outs[j:]):
        return None
    if out:
        last_i, last_o = out[-1]
        out[-1] = (last_i + list(range(i, len(ins))), last_o + list(range(j, len(outs))))
    else:
        out.append((list(range(len(ins))), list(range(len(outs)))))
    return out


def _prod(dims) -> Dim:
    total: Dim = 1
    for d in dims:
        total = total * d
    return total


def walk(graph: Graph) -> Derivation:
    """Run every node's contract in order; pin the graph's inputs and outputs."""
    d = Derivation(graph)
    layouts: dict[str, list[Layout]] = {
        name: [Context.pinned(s, f"graph input '{name}'") for s in t.shape] for name, t in graph.inputs.items()}
    types = graph.value_types()
    for node in graph.nodes:
        ins = [layouts[v] for v in node.inputs]
        in_types = [types[v] for v in node.inputs]
        _, _, params = apply_rules(node.op, in_types)
        ctx = Context(d, node, ins, in_types, params)
        contract = getattr(type(node.op), "symmetry", None) or Pinned(NO_CONTRACT.format(op=node.op.name))
        outs = d.heads.derive(contract, node.op, ctx) if involved(ins) else contract.derive(node.op, ctx)
        for v, lay in zip(node.outputs, outs, strict=True):
            layouts[v] = lay
        if isinstance(contract, Pinned):
            for local in node.params:
                ctx.fixed(local, range(len(params[local].shape)), contract.reason)
    d.values = layouts
    d.heads.finish(d, [layouts[v] for v in graph.outputs.values()],
                   Why("pinned", "output", "output", "a head split reaches a graph output", graph.span))
    for name, v in graph.outputs.items():
        why = Why("pinned", name, "output", f"graph output '{name}'", graph.span)
        for lay in layouts[v]:
            d.forest.pin_layout(lay, f"graph output '{name}'", why)
    return d
