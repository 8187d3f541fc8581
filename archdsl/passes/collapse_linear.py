"""``collapse-linear``: a chain of affine ops becomes one convolution (or one Linear) where that is cheaper.

A chain is a run of eval-affine ops each read only by the next -- convolutions (strided, dilated, grouped,
1-3d), Linear on [N, C], average pooling with the pad counted, eval BatchNorm and other per-channel affine
ops, constant scales, zero (or reflect/replicate/circular) padding, identities. The cost model
(:mod:`archdsl.passes.cost_model`) cuts each chain into segments by dynamic programming over MACs plus
activation traffic, with a per-backend penalty table; each segment of two or more ops is collapsed exactly
(:func:`~archdsl.passes.convmap.compose`: full convolution of the kernels, a strided first conv dilates the
next kernel, groups to the coarsest common partition, biases carried through, padding moved to the input).
A padded intermediate that is not zero-equivalent stops a segment. ``force`` collapses every exact segment.

    # conv1x1(conv_kxk(x)) -> conv_kxk'(x)          SESR's expansion 16 -> 256 -> 16: x0.056 MACs
    # bn(conv(pad(x)))    -> conv'(x) padded        padding moved into the collapsed conv
    # linear(linear(x))   -> linear'(x)             one matmul, when cheaper
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import ClassVar, Protocol, TypeVar, cast

from archdsl.errors import Diagnostic, UsageError
from archdsl.ir.dims import SymDim
from archdsl.ir.graph import Graph, Node
from archdsl.ir.rewrite import GraphEditor, join_path
from archdsl.ir.weights import Weights
from archdsl.ops.base import OpDef, apply_rules
from archdsl.passes import convmap as cm
from archdsl.passes import cost_model
from archdsl.passes.affine_ops import MERGED_OP, chain_input, map_of
from archdsl.passes.base import Change, Pass, PassResult
from archdsl.passes.gather import channel_gather, flatten_shaped, flattens, shuffle_factor


class _GraphConv(Protocol):
    """A graph convolution (an op whose graph_propagation() is not None)."""

    out_features: int
    bias: bool

    def with_hops(self, hops: int, out_features: int, bias: bool) -> OpDef: ...


@dataclass(frozen=True)
class Unit:
    """One step of a chain: an affine op, a channel gather (slice), a flatten, or a *fan* -- branches of affine
    ops from one value joined by a sum or a channel concat. ``nodes`` in graph order; the last is the join."""

    nodes: tuple[Node, ...]
    source: str
    output: str
    kind: str                            # "op", "gather", "flatten", "shuffle", "fan"

    @property
    def label(self) -> str:
        """The unit's ops by module path (a fan: its branches in brackets)."""
        if self.kind != "fan":
            return _label(list(self.nodes))
        return f"[{_label(list(self.nodes[:-1])) or 'identity'}] -> {_label(list(self.nodes[-1:]))}"


def _single(edit: GraphEditor, node: Node, value: str) -> str | None:
    """The kind of one-input unit ``node`` is on ``value`` (op, gather, flatten), or None."""
    if len(node.outputs) != 1:
        return None
    if chain_input(edit, node) == value:
        return "op"
    if node.inputs != (value,):
        return None
    if flatten_shaped(edit, node):                  # confirmed by running it only before a rewrite
        return "flatten"
    if shuffle_factor(edit, node) is not None:
        return "shuffle"
    gather = channel_gather(edit, node)
    return "gather" if gather is not None else None


def _split(edit: GraphEditor, node: Node) -> bool:
    """A one-input channel gather with several outputs (split, chunk along channels)."""
    return len(node.outputs) > 1 and len(node.inputs) == 1 and channel_gather(edit, node) is not None


def _fork(edit: GraphEditor, value: str) -> tuple[str, list[Node]]:
    """Walk back from ``value`` through single-use one-input units and channel splits (not flattens): (the fork
    value, the nodes)."""
    nodes: list[Node] = []
    while edit.num_uses(value) == 1 and not edit.is_output(value):
        node = edit.producer(value)
        if node is None or not node.inputs:
            break
        source = chain_input(edit, node) or node.inputs[0]
        if _single(edit, node, source) not in ("op", "gather") and not _split(edit, node):
            break
        nodes.insert(0, node)
        value = source
    return value, nodes


def _fan(edit: GraphEditor, join: Node) -> Unit | None:
    """``join`` (a sum or a channel concat of two or more values) as a fan from one value, or None."""
    if len(join.inputs) < 2 or len(join.outputs) != 1:
        return None
    summed = join.op.sum_coefficients(len(join.inputs)) is not None and \
        all(edit.types[v] == join.types[0] for v in join.inputs)
    if not summed and channel_gather(edit, join) is None:
        return None
    walks = [_fork(edit, v) for v in join.inputs]
    forks = {f for f, _ in walks}
    if len(forks) != 1:
        return None
    fork = forks.pop()
    nodes = {n.name: n for _, ns in walks for n in ns}
    inside = {*nodes, join.name}
    if any(edit.is_output(v) or any(r.name not in inside for r in edit.users(v))
           for n in nodes.values() for v in n.outputs):          # a split's other pieces read elsewhere
        return None
    order = {n.name: i for i, n in enumerate(edit.nodes)}
    unit = Unit((*sorted(nodes.values(), key=lambda n: order[n.name]), join), fork, join.outputs[0], "fan")
    try:
        unit_map(edit, unit, None)
    except cm.NotExact:
        return None
    return unit


def _next(edit: GraphEditor, value: str, fans: dict[str, list[Unit]]) -> Unit | None:
    """The unit that continues a chain at ``value`` (read by it alone), or None."""
    for fan in fans.get(value, ()):
        if edit.num_uses(value) == sum(n.inputs.count(value) for n in fan.nodes):
            return fan
    readers = edit.users(value)
    if len(readers) != 1 or edit.num_uses(value) != 1:
        return None
    kind = _single(edit, readers[0], value)
    return None if kind is None else Unit((readers[0],), value, readers[0].outputs[0], kind)


def _starts(edit: GraphEditor, value: str, fans: dict[str, list[Unit]]) -> list[Unit]:
    """Every unit that reads ``value`` (which may have other readers): chains start here."""
    units = list(fans.get(value, ()))
    for node in edit.users(value):
        kind = _single(edit, node, value)
        if kind is not None:
            units.append(Unit((node,), value, node.outputs[0], kind))
    return units


def chains(edit: GraphEditor) -> list[list[Unit]]:
    """Maximal runs of units, each unit's output read only by the next (in graph order)."""
    fans: dict[str, list[Unit]] = {}
    for node in edit.nodes:
        fan = _fan(edit, node)
        if fan is not None:
            fans.setdefault(fan.source, []).append(fan)
    covered: set[str] = set()
    out = []
    for value in [*edit.graph.inputs, *(v for n in edit.nodes for v in n.outputs)]:
        for unit in _starts(edit, value, fans):
            run: list[Unit] = []
            cur: Unit | None = unit
            while cur is not None and not covered & {n.name for n in cur.nodes}:
                run.append(cur)
                covered.update(n.name for n in cur.nodes)
                cur = _next(edit, cur.output, fans)
            if len(run) > 1 or (run and run[0].kind == "fan"):
                out.append(run)
    return out


def unit_map(edit: GraphEditor, unit: Unit, weights: Weights | None) -> cm.ConvMap | cm.Flattened | cm.Shuffled:
    """The map of one unit (weight mode when ``weights`` is given); raises NotExact for a fan that is not one map."""
    node = unit.nodes[-1]
    x = edit.types[unit.source]
    if unit.kind == "op":
        return map_of(edit, node, weights)
    if unit.kind == "flatten":
        return cm.Flattened(int(x.shape[1]), tuple(int(d) for d in x.shape[2:]))
    if unit.kind == "shuffle":
        return cm.Shuffled(int(node.types[0].shape[1]), _found(shuffle_factor(edit, node), node), x.rank - 2)
    if unit.kind == "gather":
        (picks,) = _found(channel_gather(edit, node), node)
        return cm.selection(int(x.shape[1]), tuple(c for _, c in picks), x.rank - 2, weights is not None)
    members = {n.name for n in unit.nodes[:-1]}
    branches = [_branch(edit, unit.source, v, members, weights) for v in node.inputs]
    coefficients = node.op.sum_coefficients(len(node.inputs))
    if coefficients is not None and all(edit.types[v] == node.types[0] for v in node.inputs):
        return cm.combine(branches, coefficients)
    (picks,) = _found(channel_gather(edit, node), node)
    total, spatial = len(picks), x.rank - 2
    scattered = [cm.compose(b, cm.selection(b.out_channels, tuple(c if j == i else None for j, c in picks),
                                            spatial, weights is not None)) for i, b in enumerate(branches)]
    return cm.combine(scattered, (1.0,) * len(scattered)) if total else scattered[0]


_T = TypeVar("_T")


def _found(value: _T | None, node: Node) -> _T:
    """``value`` (a unit's shuffle factor or channel picks, found when the unit was formed), never None."""
    if value is None:
        raise ValueError(f"{node.name} is not the shuffle or gather its unit says")
    return value


def _branch(edit: GraphEditor, root: str, value: str, members: set[str], weights: Weights | None) -> cm.ConvMap:
    """The map from the fan's root to one input of its join."""
    x = edit.types[root]
    if value == root:
        return cm.identity(int(x.shape[1]), x.rank - 2, weights is not None)
    node = edit.producer(value)
    if node is None:
        raise ValueError(f"{value} is a graph input, not inside the fan from {root}")
    source = chain_input(edit, node) or node.inputs[0]
    step: cm.ConvMap | cm.Flattened | cm.Shuffled
    if len(node.outputs) > 1:                                     # one piece of a channel split
        x = edit.types[source]
        picks = _found(channel_gather(edit, node), node)[node.outputs.index(value)]
        step = cm.selection(int(x.shape[1]), tuple(c for _, c in picks), x.rank - 2, weights is not None)
    else:
        step = unit_map(edit, Unit((node,), source, value, _single(edit, node, source) or "op"), weights)
    if not isinstance(step, cm.ConvMap):
        raise TypeError(f"{node.name}: a flatten or shuffle inside a fan's branch")
    return cm.compose(_branch(edit, root, source, members, weights), step)


def graph_chains(edit: GraphEditor) -> list[list[Node]]:
    """Runs of graph convolutions over one adjacency, each read only by the next, all but the last unbiased
    (S (X W1 + 1 b1) is not S X W1 + 1 b1': a bias inside would be propagated too)."""
    out: list[list[Node]] = []
    seen: set[str] = set()
    for node in edit.nodes:
        if node.name in seen or node.op.graph_propagation() is None:
            continue
        run = [node]
        while not cast(_GraphConv, run[-1].op).bias:          # graph_propagation() is not None: a graph conv
            v = run[-1].outputs[0]
            readers = edit.users(v)
            if edit.num_uses(v) != 1 or len(readers) != 1 or readers[0].op.graph_propagation() is None or \
                    readers[0].inputs != (node.inputs[0], v):
                break
            run.append(readers[0])
        seen.update(n.name for n in run)
        if len(run) > 1:
            out.append(run)
    return out


def _weighted(edit: GraphEditor, unit: Unit) -> bool:
    """A convolution, Linear or pooling window inside (not only per-channel scales, gathers or pads)."""
    for node in unit.nodes:
        source = chain_input(edit, node)
        form = node.op.conv_form(edit.types[source]) if source is not None and len(node.inputs) == 1 else None
        if form is not None and (form.weight is not None or any(k > 1 for k in form.kernel)):
            return True
    return False


def _label(nodes: list[Node]) -> str:
    return " + ".join(n.module or n.name for n in nodes)


def _refresh(edit: GraphEditor, unit: Unit) -> Unit:
    """``unit`` with its nodes as they are now (an earlier collapse rewired the first one's input)."""
    nodes = tuple(edit.live(n.name) for n in unit.nodes)
    first = nodes[0]
    source = _fork(edit, nodes[-1].inputs[0])[0] if unit.kind == "fan" else chain_input(edit, first) or \
        first.inputs[0]
    return Unit(nodes, source, nodes[-1].outputs[0], unit.kind)


@dataclass(frozen=True)
class Decision:
    """What the cost model chose for one chain: its units' names and the plan (segments with their costs)."""

    names: tuple[str, ...]
    plan: cost_model.Plan
    forced_cost: float | None = None     # every exact collapse taken (what "--force" would cost)

    def segments(self) -> list[dict]:
        """Each segment as data: its units, collapsed or kept, its cost, and the op it becomes when collapsed."""
        out = []
        for s in self.plan.segments:
            merged = s.collapsed
            out.append({"units": list(self.names[s.start:s.stop]), "action": "collapsed" if merged else "kept",
                        "cost": round(s.cost, 1),
                        "into": ("x".join(map(str, s.merged.size)) or "linear") + f" groups {s.merged.groups}"
                        if merged else None})
        return out

    def to_dict(self) -> dict:
        """The decision as JSON-ready data."""
        return {"chain": list(self.names), "kept_cost": round(self.plan.kept_cost, 1),
                "planned_cost": round(self.plan.cost, 1),
                "forced_cost": None if self.forced_cost is None else round(self.forced_cost, 1),
                "segments": self.segments()}

    def describe(self) -> str:
        """One line per segment: collapsed or kept, and its cost against keeping its ops apart."""
        lines = [f"chain {' -> '.join(self.names)}: cost {self.plan.kept_cost:,.0f} kept apart, "
                 f"{self.plan.cost:,.0f} as planned (x{self.plan.cost / max(self.plan.kept_cost, 1e-30):.3f})" +
                 ("" if self.forced_cost is None else f", {self.forced_cost:,.0f} with every exact collapse "
                  f"(x{self.forced_cost / max(self.plan.kept_cost, 1e-30):.3f})")]
        for seg in self.segments():
            what = " + ".join(seg["units"])
            lines.append(f"  collapsed {what} -> {seg['into']}: cost {seg['cost']:,.0f}" if seg["into"] else
                         f"  kept {what}: cost {seg['cost']:,.0f}")
        return "\n".join(lines)


@dataclass(frozen=True)
class CollapseLinear(Pass):
    """Collapse chains of affine ops into one op each where the cost model says it pays (``force``: always)."""

    name: ClassVar = "collapse-linear"
    summary: ClassVar = "collapse chains of affine ops (conv, linear, BN, pads, concat, slice) into one op when cheaper"
    force: bool = False
    backend: str = "cpu"                 # a row of cost_model.PENALTIES
    probe: int = 64                      # size given to symbolic dims (N: 1) when costing

    def __post_init__(self) -> None:
        if self.backend not in cost_model.PENALTIES:
            raise UsageError(Diagnostic(f"collapse-linear: unknown cost-model backend '{self.backend}'",
                                        hint=f"choose one of {', '.join(cost_model.PENALTIES)}"))

    def decisions(self, graph: Graph) -> list[Decision]:
        """The cost model's plan for every chain of ``graph`` (collapsed and kept), without rewriting; a fan kept
        as its own ops is followed by the chains inside its branches."""
        edit = GraphEditor(graph)
        forced = replace(self, force=True)
        out = []
        for run in chains(edit):
            plan = self._plan(edit, run)
            out.append(Decision(tuple(u.label for u in run), plan, forced._plan(edit, run).cost))
            for inner in self._kept_fan_chains(edit, run, plan):
                out.append(Decision(tuple(u.label for u in inner), self._plan(edit, inner),
                                    forced._plan(edit, inner).cost))
        return out

    def apply(self, graph: Graph, weights: Weights | None = None) -> PassResult:
        self.check_mode(graph)
        edit = GraphEditor(graph)
        new_weights = dict(weights) if weights is not None else None
        report: list[Change] = []
        for run in chains(edit):
            plan = self._plan(edit, run)
            inner = self._kept_fan_chains(edit, run, plan)
            report += self._rewrite(edit, run, plan, weights, new_weights)
            for branch in inner:                        # a fan kept as its own ops: its branches' chains
                branch = [_refresh(edit, u) for u in branch]
                report += self._rewrite(edit, branch, self._plan(edit, branch), weights, new_weights)
        for convs in graph_chains(edit):
            report.append(self._collapse_graph(edit, convs, weights, new_weights))
        if not report:
            return PassResult(graph, weights, False)
        new = edit.finish()
        return PassResult(new, Weights(new_weights).only(new) if new_weights is not None else None, True,
                          tuple(report))

    def _rewrite(self, edit: GraphEditor, run: list[Unit], plan: cost_model.Plan, weights: Weights | None,
                 new_weights: dict | None) -> list[Change]:
        """Collapse the segments ``plan`` chose."""
        kept = [run[s.start].label for s in plan.segments if not s.collapsed]
        report = []
        for s in plan.segments:
            if s.collapsed:
                units = [_refresh(edit, u) for u in run[s.start:s.stop]]
                change = self._collapse(edit, units, s, plan, kept, weights, new_weights)
                report += [change] if change is not None else []
        return report

    @staticmethod
    def _kept_fan_chains(edit: GraphEditor, run: list[Unit], plan: cost_model.Plan) -> list[list[Unit]]:
        """Chains of two or more one-input units inside the branches of the fans ``plan`` keeps as their own ops."""
        out = []
        for s in plan.segments:
            fan = run[s.start]
            if s.collapsed or fan.kind != "fan":
                continue
            members = {n.name for n in fan.nodes[:-1]}
            for node in fan.nodes[:-1]:
                source = chain_input(edit, node) or node.inputs[0]
                kind = _single(edit, node, source)
                before = edit.producer(source)
                if kind not in ("op", "gather") or (before is not None and before.name in members and
                                                     _single(edit, before, chain_input(edit, before) or
                                                             before.inputs[0]) in ("op", "gather")):
                    continue                            # not the first unit of a run inside the branch
                inner = [Unit((node,), source, node.outputs[0], kind)]
                while edit.num_uses(inner[-1].output) == 1:
                    (reader,) = edit.users(inner[-1].output)
                    step = _single(edit, reader, inner[-1].output) if reader.name in members else None
                    if step not in ("op", "gather"):
                        break
                    inner.append(Unit((reader,), inner[-1].output, reader.outputs[0], step))
                if len(inner) > 1:
                    out.append(inner)
        return out

    def _plan(self, edit: GraphEditor, run: list[Unit]) -> cost_model.Plan:
        maps = [unit_map(edit, u, None) for u in run]
        types = [edit.types[run[0].source], *(u.nodes[-1].types[0] for u in run)]
        elems = [self._concrete(t.numel()) for t in types]
        own = [sum(self._concrete(n.op.cost([edit.types[v] for v in n.inputs], list(n.types)).macs) for n in u.nodes)
               for u in run]
        weighted = [_weighted(edit, u) for u in run]
        owns = [any(n.params for n in u.nodes) for u in run]   # a parameter-free chain stays free of parameters
        grids = [tuple(t.shape[2:]) if all(isinstance(d, int) for d in t.shape[2:]) else None for t in types[:-1]]

        def allowed(start: int, stop: int) -> bool:
            return any(weighted[start:stop]) and any(owns[start:stop])

        return cost_model.plan(maps, elems, cost_model.PENALTIES[self.backend], self.force, allowed, own, grids,
                               [u.kind == "fan" for u in run])

    def _concrete(self, d) -> int:
        if isinstance(d, int):
            return d
        return SymDim.evaluate(d, {s: 1 if s in ("N", "B") else self.probe for s in d.symbols})

    def _collapse(self, edit: GraphEditor, units: list[Unit], segment: cost_model.Segment, plan: cost_model.Plan,
                  kept: list[str], weights: Weights | None, out: dict | None) -> Change | None:
        """Replace the segment's units by one op (a flatten first when a conv -> flatten -> Linear becomes one
        Linear); None (nothing changed) when that op's type would not be the segment's own, symbol for symbol."""
        source = units[0].source
        nodes = [n for u in units for n in u.nodes]
        merged = segment.merged
        make, groups = MERGED_OP[merged.spatial]
        last = nodes[-1]
        flat = next((u.nodes[0] for u in units if u.kind == "flatten"), None) if merged.spatial == 0 and \
            edit.types[source].rank > 2 else None
        shuffle = next((u.nodes[0] for u in units if u.kind == "shuffle"), None)
        if flat is not None and not flattens(edit, flat):
            return None
        try:
            at = edit.types[source]
            if flat is not None:
                _, (at,), _ = apply_rules(flat.op, [at])
            _, outs, _ = apply_rules(make(merged), [at])
            if shuffle is not None:
                _, outs, _ = apply_rules(shuffle.op, outs)
        except (ValueError, TypeError):                 # OpError is a ValueError
            return None
        if outs[0] != last.types[0]:
            return None
        if weights is not None:
            x = edit.types[source]
            grids = [tuple(int(d) for d in x.shape[2:]) if flat is not None else None] * len(units)
            merged = cost_model.segment_map([unit_map(edit, u, weights) for u in units], 0, len(units), grids)
        if groups is not None and merged.groups != groups:
            merged = cm.regrouped(merged, groups)
        dtype = _float_dtype(weights, nodes)
        edit.remove(*nodes)
        for full in {f for n in nodes for f in n.params.values()}:
            if not edit.param_users(full):
                del edit.params[full]
        module = self._module(edit, nodes)
        if flat is not None:
            source = edit.add_node(flat.op, [source], module=flat.module, scope=flat.scope, span=flat.span).outputs[0]
        new = edit.add_node(make(merged), [source], module=module, scope=last.scope, span=last.span)
        result = new.outputs[0]
        if shuffle is not None:                         # the pointwise maps moved before it: it runs last
            result = edit.add_node(shuffle.op, [result], module=shuffle.module, scope=shuffle.scope,
                                   span=shuffle.span).outputs[0]
        edit.replace_uses(last.outputs[0], result)
        if out is not None:
            import torch

            out[new.params["weight"]] = merged.kernel.to(dtype)
            if "bias" in new.params:
                bias = merged.bias if merged.bias is not None else torch.zeros(merged.out_channels,
                                                                               dtype=torch.float64)
                out[new.params["bias"]] = bias.to(dtype)
        note = (f"{len(nodes)} ops -> {'x'.join(map(str, merged.size)) or 'linear'} groups {merged.groups}; "
                f"cost {segment.cost:,.0f} vs {plan.kept_cost:,.0f} for the chain kept apart" +
                (f"; kept {', '.join(kept)}" if kept else "") + ("; forced" if self.force else ""))
        return Change(self.name, ".".join(last.scope), tuple(n.module or n.name for n in nodes), module, note,
                      last.span)

    def _collapse_graph(self, edit: GraphEditor, run: list[Node], weights: Weights | None, out: dict | None) -> Change:
        """graph_conv(S, graph_conv(S, X)) -> graph_conv(S, X) with hops added and W = W2 W1 (inner ones unbiased)."""
        last = run[-1]
        hops = sum(n.op.graph_propagation() or 0 for n in run)      # each is a graph conv (graph_chains)
        conv = cast(_GraphConv, last.op)
        op = conv.with_hops(hops, conv.out_features, conv.bias)
        dtype = _float_dtype(weights, run)
        edit.remove(*run)
        for full in {f for n in run for f in n.params.values()}:
            if not edit.param_users(full):
                del edit.params[full]
        module = self._module(edit, run)
        new = edit.add_node(op, [run[0].inputs[0], run[0].inputs[1]], module=module, scope=last.scope,
                            span=last.span)
        edit.replace_uses(last.outputs[0], new.outputs[0])
        if out is not None:
            if weights is None:
                raise ValueError("new weights without the weights they come from")
            product = weights[run[0].params["weight"]].detach().double()
            for n in run[1:]:
                product = weights[n.params["weight"]].detach().double() @ product
            out[new.params["weight"]] = product.to(dtype)
            if "bias" in new.params:
                out[new.params["bias"]] = weights[last.params["bias"]]
        return Change(self.name, ".".join(last.scope), tuple(n.module or n.name for n in run), module,
                      f"{len(run)} graph convolutions -> S^{hops} X W (the propagation S^{hops} X is precomputable)",
                      last.span)

    @staticmethod
    def _module(edit: GraphEditor, nodes: list[Node]) -> str:
        """The segment's common module path (else its last layer's) when nothing else lives there now, else
        ``{path}.collapsed``."""
        paths = [n.module.split(".") for n in nodes if n.module]
        common = ".".join(os.path.commonprefix(paths)) if paths else ""
        for name in (common, nodes[-1].module):             # the block's name, else the last layer's
            if name and not edit.module_params(name):
                return name
        return edit.fresh_module(join_path(common or ".".join(nodes[-1].scope), "collapsed"))


def _float_dtype(weights: Weights | None, nodes: list[Node]):
    """The dtype of the segment's weights (float32 when it has no floating weight)."""
    import torch

    own = [] if weights is None else [weights[f] for n in nodes for f in n.params.values()
                                      if weights[f].is_floating_point()]
    return own[0].dtype if own else torch.float32
