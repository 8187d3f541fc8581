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
from dataclasses import dataclass
from typing import ClassVar

from archdsl.errors import Diagnostic, UsageError
from archdsl.ir.dims import SymDim
from archdsl.ir.graph import Graph, Node
from archdsl.ir.rewrite import GraphEditor, join_path
from archdsl.ir.weights import Weights
from archdsl.ops.base import apply_rules
from archdsl.passes import convmap as cm
from archdsl.passes import cost_model
from archdsl.passes.affine_ops import MERGED_OP, chain_input, map_of
from archdsl.passes.base import Change, Pass, PassResult


def chains(edit: GraphEditor) -> list[list[Node]]:
    """Maximal runs of affine ops, each op's output read only by the next (in graph order)."""
    seen: set[str] = set()
    out = []
    for node in edit.nodes:
        if node.name in seen or chain_input(edit, node) is None:
            continue
        run = [node]
        while True:
            v = run[-1].outputs[0]
            readers = edit.users(v)
            if edit.num_uses(v) != 1 or len(readers) != 1 or chain_input(edit, readers[0]) != v:
                break
            run.append(readers[0])
        seen.update(n.name for n in run)
        if len(run) > 1:
            out.append(run)
    return out


def graph_chains(edit: GraphEditor) -> list[list[Node]]:
    """Runs of graph convolutions over one adjacency, each read only by the next, all but the last unbiased
    (S (X W1 + 1 b1) is not S X W1 + 1 b1': a bias inside would be propagated too)."""
    out, seen = [], set()
    for node in edit.nodes:
        if node.name in seen or node.op.graph_propagation() is None:
            continue
        run = [node]
        while not run[-1].op.bias:
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


def _weighted(edit: GraphEditor, node: Node) -> bool:
    """A convolution, Linear or pooling window (not a per-channel scale or a pad alone)."""
    x = edit.types[chain_input(edit, node)]
    form = node.op.conv_form(x) if len(node.inputs) == 1 else None
    return form is not None and (form.weight is not None or any(k > 1 for k in form.kernel))


def _label(nodes: list[Node]) -> str:
    return " + ".join(n.module or n.name for n in nodes)


@dataclass(frozen=True)
class Decision:
    """What the cost model chose for one chain: its ops' names and the plan (segments with their costs)."""

    names: tuple[str, ...]
    plan: cost_model.Plan

    def describe(self) -> str:
        """One line per segment: collapsed or kept, and its cost against keeping its ops apart."""
        lines = [f"chain {' -> '.join(self.names)}: cost {self.plan.kept_cost:,.0f} kept apart, "
                 f"{self.plan.cost:,.0f} as planned (x{self.plan.cost / max(self.plan.kept_cost, 1e-30):.3f})"]
        for s in self.plan.segments:
            what = " + ".join(self.names[s.start:s.stop])
            if s.stop - s.start > 1:
                lines.append(f"  collapsed {what} -> {'x'.join(map(str, s.merged.size)) or 'linear'} "
                             f"groups {s.merged.groups}: cost {s.cost:,.0f}")
            else:
                lines.append(f"  kept {what}: cost {s.cost:,.0f}")
        return "\n".join(lines)


@dataclass(frozen=True)
class CollapseLinear(Pass):
    """Collapse chains of affine ops into one op each where the cost model says it pays (``force``: always)."""

    name: ClassVar = "collapse-linear"
    summary: ClassVar = "collapse chains of affine ops (conv, linear, BN, pads) into one op when cheaper"
    force: bool = False
    backend: str = "cpu"                 # a row of cost_model.PENALTIES
    probe: int = 64                      # size given to symbolic dims (N: 1) when costing

    def __post_init__(self) -> None:
        if self.backend not in cost_model.PENALTIES:
            raise UsageError(Diagnostic(f"collapse-linear: unknown cost-model backend '{self.backend}'",
                                        hint=f"choose one of {', '.join(cost_model.PENALTIES)}"))

    def decisions(self, graph: Graph) -> list[Decision]:
        """The cost model's plan for every chain of ``graph`` (collapsed and kept), without rewriting."""
        edit = GraphEditor(graph)
        return [Decision(tuple(n.module or n.name for n in run), self._plan(edit, run)) for run in chains(edit)]

    def apply(self, graph: Graph, weights: Weights | None = None) -> PassResult:
        self.check_mode(graph)
        edit = GraphEditor(graph)
        new_weights = dict(weights) if weights is not None else None
        report: list[Change] = []
        for run in chains(edit):
            plan = self._plan(edit, run)
            if not plan.collapses:
                continue
            kept = [_label(run[s.start:s.stop]) for s in plan.segments if s.stop - s.start == 1]
            for s in plan.segments:
                if s.stop - s.start > 1:
                    change = self._collapse(edit, [edit.node(n.name) for n in run[s.start:s.stop]], s, plan, kept,
                                            weights, new_weights)
                    report += [change] if change is not None else []
        for run in graph_chains(edit):
            report.append(self._collapse_graph(edit, run, weights, new_weights))
        if not report:
            return PassResult(graph, weights, False)
        new = edit.finish()
        return PassResult(new, Weights(new_weights).only(new) if new_weights is not None else None, True,
                          tuple(report))

    def _plan(self, edit: GraphEditor, run: list[Node]) -> cost_model.Plan:
        maps = [map_of(edit, n, None) for n in run]
        types = [edit.types[chain_input(edit, run[0])], *(n.types[0] for n in run)]
        elems = [self._concrete(t.numel()) for t in types]
        own = [self._concrete(n.op.cost([edit.types[v] for v in n.inputs], list(n.types)).macs) for n in run]
        weighted = [_weighted(edit, n) for n in run]
        owns = [bool(n.params) for n in run]            # a parameter-free chain stays free of parameters

        def allowed(start: int, stop: int) -> bool:
            return any(weighted[start:stop]) and any(owns[start:stop])

        return cost_model.plan(maps, elems, cost_model.PENALTIES[self.backend], self.force, allowed, own)

    def _concrete(self, d) -> int:
        if isinstance(d, int):
            return d
        return SymDim.evaluate(d, {s: 1 if s in ("N", "B") else self.probe for s in d.symbols})

    def _collapse(self, edit: GraphEditor, nodes: list[Node], segment: cost_model.Segment, plan: cost_model.Plan,
                  kept: list[str], weights: Weights | None, out: dict | None) -> Change | None:
        """Replace ``nodes`` by one op; None (nothing changed) when that op's type would not be the segment's
        own, symbol for symbol."""
        source = chain_input(edit, nodes[0])
        merged = segment.merged
        make, groups = MERGED_OP[merged.spatial]
        last = nodes[-1]
        try:
            _, outs, _ = apply_rules(make(merged), [edit.types[source]])
        except (ValueError, TypeError):                 # OpError is a ValueError
            return None
        if outs[0] != last.types[0]:
            return None
        if weights is not None:
            merged = cost_model.segment_map([map_of(edit, n, weights) for n in nodes], 0, len(nodes))
        if groups is not None and merged.groups != groups:
            merged = cm.regrouped(merged, groups)
        dtype = _float_dtype(weights, nodes)
        edit.remove(*nodes)
        for full in {f for n in nodes for f in n.params.values()}:
            if not edit.param_users(full):
                del edit.params[full]
        module = self._module(edit, nodes)
        new = edit.add_node(make(merged), [source], module=module, scope=last.scope, span=last.span)
        edit.replace_uses(last.outputs[0], new.outputs[0])
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
        hops = sum(n.op.graph_propagation() for n in run)
        op = last.op.with_hops(hops, last.op.out_features, last.op.bias)
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
