"""Training-time collapse (SESR's trick): each linear region runs as one convolution whose kernel is computed
from the expanded parameters at every step, so gradients reach the expanded parameters while the forward
pays the collapsed cost.

A region is a single-input, single-output part of the graph made of ops that are affine in *training* mode
(convolutions, identities, constant scales, pads, average pooling, sums of branches -- never BatchNorm,
whose training-mode statistics are not a fixed affine map, nor dropout) that composes exactly into one
stride-1 convolution (:mod:`archdsl.passes.convmap`) and costs fewer MACs collapsed. Its kernel is read
off the expanded region by a delta probe -- the region applied to one delta image per input channel,
minus its response to zeros (the bias) -- which is exact, differentiable, and independent of the image
size. Unlike SESR's own code, biases are carried through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from archdsl.errors import Diagnostic, UsageError
from archdsl.ir.graph import Graph, Node
from archdsl.ir.rewrite import GraphEditor
from archdsl.ops.base import Trait
from archdsl.passes import convmap as cm
from archdsl.passes.affine_ops import chain_input, map_of


@dataclass(frozen=True)
class Region:
    """Nodes (graph order) from ``root`` to ``output``, and the stride-1 convolution they compose into."""

    root: str
    output: str
    nodes: tuple[Node, ...]
    merged: cm.ConvMap
    expanded_macs: int                     # per output pixel
    collapsed_macs: int                    # per output pixel


def _affine_in_training(edit: GraphEditor, node: Node) -> str | None:
    """The tensor input through which ``node`` is affine in training mode too, or None."""
    if node.op.has(Trait.TRAIN_EVAL) or node.op.has(Trait.STOCHASTIC):
        return None
    return chain_input(edit, node)


def _span(edit: GraphEditor, value: str, top: bool = False) -> tuple[str, list[Node]]:
    """Walk back from ``value`` through single-use affine ops and sums of branches that meet at one root."""
    node = edit.producer(value)
    if node is None or (not top and (edit.num_uses(value) != 1 or edit.is_output(value))):
        return value, []
    source = _affine_in_training(edit, node)
    if source is not None:
        root, nodes = _span(edit, source)
        return root, [*nodes, node]
    if node.op.sum_coefficients(len(node.inputs)) is not None and len(node.outputs) == 1 and \
            all(edit.types[v] == node.types[0] for v in node.inputs):
        spans = [_span(edit, v) for v in node.inputs]
        roots = {r for r, _ in spans}
        if len(roots) == 1:
            seen = {n.name: n for _, ns in spans for n in ns}
            return roots.pop(), [*seen.values(), node]
    return value, []


def _map(edit: GraphEditor, root: str, value: str, members: set[str]) -> cm.ConvMap:
    """The structural ConvMap from ``root`` to ``value`` inside a region; raises NotExact."""
    x = edit.types[root]
    if value == root:
        return cm.identity(int(x.shape[1]), x.rank - 2, False)
    node = edit.producer(value)
    if node is None:
        raise ValueError(f"{value} is a graph input, not computed inside the region from {root}")
    source = chain_input(edit, node)
    if source is not None and node.name in members:
        return cm.compose(_map(edit, root, source, members), map_of(edit, node, None))
    coefficients = node.op.sum_coefficients(len(node.inputs))
    if coefficients is None:
        raise ValueError(f"{node.name} is neither an affine map nor a weighted sum")
    return cm.combine([_map(edit, root, v, members) for v in node.inputs], coefficients)


def regions(graph: Graph) -> list[Region]:
    """The collapsible linear regions of a training graph (maximal, disjoint, each cheaper collapsed)."""
    edit = GraphEditor(graph)
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    taken: set[str] = set()
    found = []
    for node in reversed(graph.nodes):
        if node.name in taken or len(node.outputs) != 1:
            continue
        root, nodes = _span(edit, node.outputs[0], top=True)
        x = edit.types[root]
        if len(nodes) < 2 or x.rank < 3 or not isinstance(x.shape[1], int):
            continue
        try:
            merged = _map(edit, root, node.outputs[0], {n.name for n in nodes})
        except cm.NotExact:
            continue
        if any(s != 1 for s in merged.stride) or merged.mode != "zeros":
            continue
        expanded = sum(_per_pixel(map_of(edit, n, None)) for n in nodes if chain_input(edit, n) is not None)
        collapsed = merged.in_channels * math.prod(merged.size) * merged.out_channels
        if collapsed >= expanded:
            continue
        taken.update(n.name for n in nodes)
        ordered = tuple(sorted(nodes, key=lambda n: order[n.name]))
        found.append(Region(root, node.outputs[0], ordered, merged, expanded, collapsed))
    return sorted(found, key=lambda r: order[r.nodes[0].name])


def _per_pixel(m: cm.ConvMap) -> int:
    return m.in_channels // m.groups * math.prod(m.size) * m.out_channels


class CollapsedTraining(torch.nn.Module):
    """An archdsl-built module whose linear regions run collapsed: the same parameters under the same
    state_dict names (``inner``'s), the same function and gradients."""

    inner: torch.nn.Module                               # set with object.__setattr__: not a submodule

    def __init__(self, module: torch.nn.Module, graph: Graph):
        super().__init__()
        from archdsl.analysis.linearize import _node_function

        object.__setattr__(self, "inner", module)       # its layers are registered here under their own names
        for name, child in module.named_children():
            self.add_module(name, child)
        for name, p in module.named_parameters(recurse=False):
            self.register_parameter(name, p)
        for name, b in module.named_buffers(recurse=False):
            self.register_buffer(name, b)
        self.graph = graph
        self.regions = regions(graph)
        inside = {n.name for r in self.regions for n in r.nodes}
        self._fns = {n.name: _node_function(n, graph) for n in graph.nodes}
        by_output = {r.output: r for r in self.regions}
        self._steps: list[Any] = []
        for n in graph.nodes:
            if n.name not in inside:
                self._steps.append(n)
            elif n.outputs[0] in by_output:
                self._steps.append(by_output[n.outputs[0]])

    @property
    def collapse_train_inner(self) -> torch.nn.Module:
        """The wrapped expanded module (what ``archdsl.save_built`` writes as model.py)."""
        return self.inner

    def describe(self) -> list[str]:
        """One line per region: its ops and MACs per output pixel expanded -> collapsed."""
        lines = []
        for r in self.regions:
            names = " + ".join(n.module or n.name for n in r.nodes)
            size = "x".join(map(str, r.merged.size))
            lines.append(f"{names} -> one {size} conv: {r.expanded_macs:,} -> {r.collapsed_macs:,} MACs per output "
                         f"pixel (x{r.collapsed_macs / r.expanded_macs:.3f})")
        return lines

    def train(self, mode: bool = True) -> CollapsedTraining:
        """Switch this module and the wrapped one (whose forward reads ``self.training``)."""
        super().train(mode)
        self.inner.train(mode)
        return self

    def _run(self, nodes: tuple[Node, ...], env: dict[str, Any]) -> None:
        for n in nodes:
            out = self._fns[n.name](self.inner, *(env[v] for v in n.inputs))
            env.update(zip(n.outputs, out if isinstance(out, tuple) else (out,), strict=True))

    def kernel(self, region: Region, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The region's collapsed (kernel [O, C, *k], bias [O]) from the live parameters, by a delta probe."""
        m = region.merged
        k, n, c = m.size, m.spatial, m.in_channels
        size = tuple(2 * kk - 1 for kk in k)
        centre = tuple(kk - 1 for kk in k)
        probe = torch.zeros((c + 1, c, *size), dtype=like.dtype, device=like.device)   # c deltas, then zeros
        probe[(torch.arange(c), torch.arange(c), *(torch.full((c,), z) for z in centre))] = 1.0
        env = {region.root: probe}
        self._run(region.nodes, env)
        response = env[region.output]                                   # [c + 1, O, *out]
        bias = response[(-1, slice(None), *(slice(z + p, z + p + 1) for z, (p, _) in zip(centre, m.pads,  # type: ignore[index]  # ints and slices; mypy joins them to object
                                                                                              strict=True)))]
        window = tuple(slice(p, p + kk) for (p, _), kk in zip(m.pads, k, strict=True))
        taps = (response[:c] - response[c:]).__getitem__((slice(None), slice(None), *window))
        kernel = taps.flip(tuple(range(2, 2 + n))).transpose(0, 1)        # [O, C, *k]
        return kernel, bias.reshape(-1)

    def forward(self, *inputs: torch.Tensor) -> Any:
        spec = getattr(self.inner, "_input_spec", None)
        if spec is not None:                                   # built with check_inputs: the same located errors
            from archdsl.backends.torch import runtime

            runtime.check_inputs(spec, inputs)
        env: dict[str, Any] = dict(zip(self.graph.inputs, inputs, strict=True))
        for step in self._steps:
            if isinstance(step, Region):
                x = env[step.root]
                kernel, bias = self.kernel(step, x)
                pads = tuple(p for pair in reversed(step.merged.pads) for p in pair)
                conv = (F.conv1d, F.conv2d, F.conv3d)[step.merged.spatial - 1]
                env[step.output] = conv(F.pad(x, pads), kernel, bias)
            else:
                self._run((step,), env)
        outs = tuple(env[v] for v in self.graph.outputs.values())
        return outs[0] if len(outs) == 1 else outs


def collapse_train(module: torch.nn.Module) -> CollapsedTraining:
    """Wrap an archdsl-built module so its linear regions train collapsed (SESR's training-time collapse)."""
    graph = getattr(module, "archdsl_graph", None)
    if graph is None:
        raise UsageError(Diagnostic("collapse_train needs a module built by archdsl (archdsl.build)",
                                    hint="build it with archdsl.build(spec) or load it with archdsl.load_built(folder), "
                                         "then wrap that module"))
    return CollapsedTraining(module, graph)
