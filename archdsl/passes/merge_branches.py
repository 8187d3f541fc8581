"""``merge-branches``: a sum of parallel affine branches on one input becomes one convolution (RepVGG, DBB,
ACNet, MobileOne, RepLKNet/UniRepLKNet, FastViT's RepMixer, RepViT, SESR blocks).

Each input of a sum (add, add_n, sub) is traced back through single-use eval-affine ops -- convolutions,
average pooling, per-channel affine ops, identities -- to the common input; each branch becomes a
:class:`~archdsl.passes.convmap.ConvMap` and the weighted sum of those is one grouped convolution. A sum
tagged ``reparam`` is the author's claim that this is exact: a branch that is not affine, or branches
that cannot be aligned, are an error located at the block. An untagged sum is merged only when it is
exact and the merged convolution costs no more MACs than the branches.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from archdsl.errors import Diagnostic
from archdsl.ir.dims import SymDim
from archdsl.ir.graph import Graph, Node
from archdsl.ir.rewrite import GraphEditor, join_path
from archdsl.ir.types import TensorType
from archdsl.ir.weights import Weights
from archdsl.passes import convmap as cm
from archdsl.passes.affine_ops import MERGED_OP, chain_input, map_of
from archdsl.passes.base import Change, Pass, PassError, PassResult

_PROBE = 32                                              # size given to symbolic dims when comparing MACs


@dataclass
class Branch:
    """One input of a sum: the ops from the common input to it (first to last), and where tracing stopped."""

    value: str
    root: str
    chain: list[Node] = field(default_factory=list)

    def name(self) -> str:
        """The branch's module path (the common prefix of its layers' paths), for messages and reports."""
        paths = [n.module.split(".") for n in self.chain if n.module]
        if not paths:
            return "identity" if not self.chain else self.chain[0].name
        common = os.path.commonprefix(paths)               # element-wise on lists of path parts
        return ".".join(common) or ".".join(paths[0])


def _trace(edit: GraphEditor, value: str) -> Branch:
    """Walk back from ``value`` through single-use affine ops."""
    branch = Branch(value, value)
    v = value
    while True:
        node = edit.producer(v)
        if node is None or edit.num_uses(v) != 1:
            break
        source = chain_input(edit, node)
        if source is None:
            break
        branch.chain.insert(0, node)
        v = source
    branch.root = v
    return branch


def _common_root(edit: GraphEditor, branches: list[Branch]) -> str | None:
    """The input every branch starts from, if they share one.

    A chain may walk past the common input when that input has a single use; trim each chain to the
    deepest value all branches pass through.
    """
    paths = []
    for b in branches:
        paths.append([b.root, *(n.outputs[0] for n in b.chain)])
    shared = set(paths[0]).intersection(*paths[1:])
    if not shared:
        return None
    root = max(shared, key=lambda v: paths[0].index(v))           # the latest value on every path
    for b, path in zip(branches, paths, strict=True):
        b.chain = b.chain[path.index(root):]
        b.root = root
    return root


def _branch_map(edit: GraphEditor, branch: Branch, x: TensorType, weights: Mapping | None) -> cm.ConvMap:
    if not branch.chain:
        return cm.identity(int(x.shape[1]), x.rank - 2, weights is not None)
    m = map_of(edit, branch.chain[0], weights)
    for node in branch.chain[1:]:
        m = cm.compose(m, map_of(edit, node, weights))
    return m


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


def _concrete(d) -> int:
    return d if isinstance(d, int) else SymDim.evaluate(d, dict.fromkeys(d.symbols, _PROBE))


def _macs(edit: GraphEditor, nodes: list[Node]) -> int:
    total = 0
    for n in nodes:
        total += _concrete(n.op.cost([edit.types[v] for v in n.inputs], list(n.types)).macs)
    return total


@dataclass(frozen=True)
class MergeBranches(Pass):
    """Merge every re-parameterisation block (and any cheaper exact affine sum) into one convolution."""

    name: ClassVar = "merge-branches"
    summary: ClassVar = "merge parallel affine branches (reparam blocks) into one convolution"
    preconditions: ClassVar = ("eval mode; every branch is a single-use chain of convolutions, average pools "
                               "(count_include_pad), per-channel affine ops and identities from one input; equal "
                               "strides and output grids; one padding mode; padding inside a chain only after a "
                               "bias-free 1x1")
    conv_name: str = "reparam_conv"          # the merged layer's name in the block's scope (timm's)

    def apply(self, graph: Graph, weights: Weights | None = None) -> PassResult:
        self.check_mode(graph)
        edit = GraphEditor(graph)
        new_weights = dict(weights) if weights is not None else None
        report = []
        for node in graph.nodes:
            current = edit.node(node.name)
            if current is None or current.op.sum_coefficients(len(current.inputs)) is None:
                continue
            change = self._merge(edit, current, new_weights)
            if change is not None:
                report.append(change)
        if not report:
            return PassResult(graph, weights, False)
        new = edit.finish()
        return PassResult(new, Weights(new_weights).only(new) if new_weights is not None else None, True,
                          tuple(report))

    def _merge(self, edit: GraphEditor, total: Node, weights: dict | None) -> Change | None:
        """Merge the sum ``total`` when it is exact (and, untagged, no dearer); ``weights`` is updated in place."""
        claimed = "reparam" in total.tags
        coefficients = total.op.sum_coefficients(len(total.inputs))
        if coefficients is None:
            raise TypeError(f"{total.name} is not a weighted sum of its inputs")
        types = [edit.types[v] for v in total.inputs]
        if any(t != total.types[0] for t in types) or total.types[0].rank < 2:
            if claimed:
                self._refuse(total, "its branches do not all have the result's type "
                             f"({', '.join(str(t) for t in types)} -> {total.types[0]})")
            return None
        branches = [_trace(edit, v) for v in total.inputs]
        root = _common_root(edit, branches)
        if root is None:
            if claimed:
                self._not_affine(edit, total, branches)
            return None
        x = edit.types[root]
        try:
            maps = [_branch_map(edit, b, x, weights) for b in branches]
            sizes = tuple(zip(x.shape[2:], total.types[0].shape[2:], strict=True))
            merged = cm.combine(maps, coefficients, sizes)
        except cm.NotExact as exc:
            if claimed:
                self._refuse(total, str(exc))
            return None
        chain = [n for b in branches for n in b.chain]
        make, groups = MERGED_OP[merged.spatial]
        if groups is not None and merged.groups != groups:
            merged = cm.regrouped(merged, groups)
        module = self._name(edit, total, chain, claimed)
        new = edit.add_node(make(merged), [root], before=total, module=module, scope=total.scope, span=total.span)
        if not claimed and _macs(edit, [new]) > _macs(edit, chain):
            edit.remove(new)                     # exact, but dearer than the branches: leave them
            return None
        edit.replace_uses(total.outputs[0], new.outputs[0])
        edit.remove(total, *chain)
        if weights is not None:
            dtype = next((weights[f].dtype for n in chain for f in n.params.values()
                          if weights[f].is_floating_point()), None)
            self._store(weights, new, merged, dtype)
        merged_names = tuple(dict.fromkeys(b.name() for b in branches))
        return Change(self.name, ".".join(total.scope), merged_names, module,
                      f"{len(branches)} branches -> {merged.size} conv, groups {merged.groups}", total.span)

    def _name(self, edit: GraphEditor, total: Node, chain: list[Node], claimed: bool) -> str:
        """``{block}.reparam_conv`` for a reparam block; for another sum, the block's own name when no other
        layer with parameters remains in it (timm's fused RepViT head), else ``{block}.reparam_conv``."""
        scope = ".".join(total.scope)
        chosen = next((t.removeprefix("merge-as:") for t in total.tags if t.startswith("merge-as:")), None)
        if chosen is not None:                   # reparam "name" { ... }: the author's name
            return edit.fresh_module(join_path(scope, chosen))
        if not claimed and scope:
            gone = {total.name, *(n.name for n in chain)}
            if not any(_under(p, scope) for n in edit.nodes if n.name not in gone for p in n.params.values()):
                return scope
        return edit.fresh_module(join_path(scope, self.conv_name))

    @staticmethod
    def _store(out: dict, node: Node, merged: cm.ConvMap, dtype) -> None:
        import torch

        dtype = dtype or torch.float32
        out[node.params["weight"]] = merged.kernel.to(dtype)
        if "bias" in node.params:
            bias = merged.bias if merged.bias is not None else torch.zeros(merged.out_channels, dtype=torch.float64)
            out[node.params["bias"]] = bias.to(dtype)

    def _refuse(self, total: Node, reason: str) -> None:
        where = ".".join(total.scope) or "the model"
        raise PassError(Diagnostic(f"the reparam block at {where} cannot be merged into one convolution exactly: "
                                   f"{reason}", total.span,
                                   "a reparam block claims its branches sum to one convolution; move the offending "
                                   "part out of the block, or make the branches agree"))

    def _not_affine(self, edit: GraphEditor, total: Node, branches: list[Branch]) -> None:
        """Name the op where a branch stops being affine."""
        order = {v: i for i, n in enumerate(edit.nodes) for v in n.outputs}
        common = min((b.root for b in branches), key=lambda v: order.get(v, -1))    # the most upstream start
        for b in branches:
            stop = edit.producer(b.root)
            if b.root != common and stop is not None:
                why = "it is read elsewhere too" if edit.num_uses(b.root) != 1 else "it is not affine in eval mode"
                where = f" ({stop.span})" if stop.span else ""
                self._refuse(total, f"branch '{b.name()}' reaches {stop.op.name} '{stop.module or stop.name}'"
                                    f"{where}, and {why}")
        self._refuse(total, "its branches do not start from one common input")
