"""Values computed from parameters and buffers alone, in generated modules: computed once, reused while unchanged.

Some forward values depend on no input: LeViT's attention bias ``attention_biases[:, attention_bias_idxs]``
gathers a [heads, Nq, Nk] table from a parameter and a constant index, in every block, on every call. timm
caches that gather in eval mode (its ``get_attention_biases``); archdsl does it for any graph:

* A value is *parameter-only* when its node runs in forward (it is not a build-time constant, see
  ``constants.py``), its output shapes are static, its op is neither stochastic, train/eval-dependent,
  recurrent nor a buffer, it calls no submodule (a module's forward hooks, weight_norm's among them, must run
  every call), and each input is parameter-only, a build-time constant or a buffer. Free parameters
  (``attention_biases``) start such chains. A value a graph output may be (the output, a view it is of, an
  eval-mode dropout's input) is not parameter-only, nor anything computed from it: a returned tensor is never
  the cache's own.
* Caching pays only where a value costs work: the values cached are the parameter-only values forward reads
  that some op other than a parameter read or a SHAPE_ONLY move (a reshape of a weight) computed. The nodes
  they are computed from go to the generated method ``_parameter_values`` (returning them), the tensors those
  nodes read to ``_parameter_sources``. Forward starts with ``parameter_values = rt.parameter_values(self)``:
  the values, reused while every source is the same tensor with the same version, data pointer, dtype, device
  and shape; or None, and then forward computes them inline, each in its own place (``if parameter_values is
  None:``), exactly as uncached code would: whenever autograd could need them (grad enabled and a source
  requires grad: training recomputes every call, with the same autograd graph and gradients bit for bit) or a
  tracer, compiler, exporter or torch mode watches (see ``runtime.parameter_values``).
* Cached values are never overwritten in place: they are not *fresh* to the in-place forms of ``codegen``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archdsl.backends.torch.constants import build_time_values
from archdsl.backends.torch.registry import rule_for
from archdsl.ir.graph import Graph, Node
from archdsl.ops.base import Trait

if TYPE_CHECKING:
    from archdsl.backends.torch.codegen import _Emitter

# Ops whose results can change from call to call with the same parameters (random draws, train/eval switches,
# decoding state) or that register state: never cached.
_VARYING = (Trait.STOCHASTIC, Trait.TRAIN_EVAL, Trait.RECURRENT, Trait.BUFFER)
METHODS = ("_parameter_values", "_parameter_sources")
LOCAL = "parameter_values"      # forward's local holding the cached values (a name codegen reserves)


def _static(node: Node) -> bool:
    return all(isinstance(d, int) for t in node.types for d in t.shape)


def parameter_only_values(graph: Graph) -> set[str]:
    """Values of forward nodes computed from parameters, buffers and build-time constants alone, that no graph
    output is (or is computed from)."""
    if not any("" in n.params or n.op.has(Trait.BUFFER) for n in graph.nodes):
        return set()        # chains start at a free parameter or a buffer (constants alone are build-time)
    constant = build_time_values(graph) | {v for n in graph.nodes if n.op.has(Trait.BUFFER) for v in n.outputs}

    def closure(excluded: set[str]) -> set[str]:
        found: set[str] = set()
        for node in graph.nodes:        # (cheapest test first: most nodes read an input's value)
            if not all(v in found or v in constant for v in node.inputs):
                continue
            if all(v in constant for v in node.outputs) or any(node.op.has(t) for t in _VARYING):
                continue
            if node.params and "" not in node.params:      # a submodule's call: its hooks run every call
                continue
            if _static(node) and not any(v in excluded for v in node.outputs):     # excluded: may be returned
                found.update(node.outputs)
        return found

    found = closure(set())
    returned = _returned(graph) & found
    return closure(returned) if returned else found


def _returned(graph: Graph) -> set[str]:
    """The graph's outputs and every value one of them may be (or be a view of), through ``_may_alias`` nodes.
    Free parameters are left out: returning one (or a view of one) is what the uncached code does too."""
    producer = {v: n for n in graph.nodes for v in n.outputs}
    out: set[str] = set()
    todo = list(graph.outputs.values())
    while todo:
        v = todo.pop()
        if v in out:
            continue
        node = producer.get(v)
        if node is not None and node.params and not node.inputs:
            continue        # a parameter itself: a source the cache watches, never a tensor it made
        out.add(v)
        if node is not None and _may_alias(node):
            todo += node.inputs
    return out


def _may_alias(node: Node) -> bool:
    """Whether ``node``'s result may be (a view of) an input: a SHAPE_ONLY move, an EVAL_IDENTITY op (dropout is
    its input in eval mode), or any op of one tensor not known to make a new one (``Lowering.fresh``: an
    identity, a one-operand einsum that only permutes). Ops of several tensors (matmul, add) make new ones."""
    if node.op.has(Trait.SHAPE_ONLY) or node.op.has(Trait.EVAL_IDENTITY):
        return True
    return len(set(node.inputs)) == 1 and not rule_for(node.op).fresh


def _ancestors(graph: Graph, values: set[str], within: set[str]) -> set[str]:
    """``values`` and every value of ``within`` they are computed from."""
    producer = {v: n for n in graph.nodes for v in n.outputs}
    out: set[str] = set()
    todo = [v for v in values if v in within]
    while todo:
        v = todo.pop()
        if v in out:
            continue
        node = producer[v]
        out.update(node.outputs)
        todo += [u for u in node.inputs if u in within and u not in out]
    return out


class ParameterValues:
    """Which nodes compute cached values, and the lines of ``_parameter_values`` / ``_parameter_sources``."""

    def __init__(self, graph: Graph, enabled: bool = True) -> None:
        self.graph = graph
        self.region: set[int] = set()        # ids of the nodes emitted into _parameter_values
        self.frontier: list[str] = []        # the values it returns, in order
        self.lines: list[str] = []
        self.sources: dict[str, None] = {}   # source expressions, in order
        self.values: set[str] = set()        # every value the region computes
        self.shared: set[int] = set()        # region nodes forward runs too (parameter reads it needs)
        self.open = False                    # forward is inside an `if parameter_values is None:` block
        self.run: list[str] = []             # frontier values that block computes
        if enabled:
            self._analyse()

    def _analyse(self) -> None:
        graph = self.graph
        only = parameter_only_values(graph)
        if not only:
            return
        heavy: set[str] = set()
        for node in graph.nodes:
            if any(v in only for v in node.outputs) and (
                    (node.inputs and not node.op.has(Trait.SHAPE_ONLY)) or any(v in heavy for v in node.inputs)):
                heavy.update(node.outputs)
        forward_reads = {v for n in graph.nodes if not any(o in only for o in n.outputs) for v in n.inputs}
        wanted = heavy & forward_reads
        if not wanted:
            return
        inside = _ancestors(graph, wanted, only)
        self.values = inside
        self.region = {id(n) for n in graph.nodes if any(v in inside for v in n.outputs)}
        outside_reads = {v for n in graph.nodes if id(n) not in self.region for v in n.inputs}
        for n in graph.nodes:
            if id(n) in self.region and not n.inputs and any(v in outside_reads for v in n.outputs):
                self.shared.add(id(n))      # a parameter forward also reads: read it there too
            elif id(n) in self.region:
                self.frontier += [v for v in n.outputs if v in outside_reads]

    def holds(self, node: Node) -> bool:
        """True when ``node`` is emitted into ``_parameter_values``."""
        return id(node) in self.region

    def shares(self, node: Node) -> bool:
        """True for a parameter read both ``_parameter_values`` and forward hold (reading is free)."""
        return id(node) in self.shared

    def note_sources(self, emitter: _Emitter, node: Node, ref: str | None) -> None:
        """Record the tensors ``node`` (a region node) reads from the module: a free parameter, or the constants
        and buffers among its inputs."""
        if ref is not None:             # a free parameter (the region calls no submodule)
            self.sources[ref] = None
        for v in node.inputs:
            if v not in self.values:
                self.sources[emitter.local[v]] = None

    def start(self) -> list[str]:
        """The forward line that fetches the cached values (None: forward computes them inline)."""
        if not self.region:
            return []
        return [f"        {LOCAL} = rt.parameter_values(self)  # values of parameters alone, reused while they are "
                "unchanged; None: computed inline (autograd may need them)"]

    def inline(self, node: Node, lines: list[str]) -> list[str]:
        """Forward lines of a region node: run only when ``parameter_values`` gave None (in the node's own place,
        so autograd sees the ops in the uncached order and accumulates gradients bit for bit the same)."""
        head = [] if self.open else [f"        if {LOCAL} is None:"]
        self.open = True
        self.run += [v for v in node.outputs if v in self.frontier]
        return head + ["    " + line for line in lines]

    def close(self, emitter: _Emitter) -> list[str]:
        """End a run of inline region lines: otherwise its values come from ``parameter_values``."""
        if not self.open:
            return []
        self.open, run, self.run = False, self.run, []
        if not run:
            return []
        return ["        else:", *(f"            {emitter.local[v]} = {LOCAL}[{self.frontier.index(v)}]" for v in run)]

    def methods(self, emitter: _Emitter) -> list[str]:
        """``_parameter_values``, ``_parameter_sources`` and a ``train`` that forgets the cached values."""
        if not self.region:
            return []
        values = ", ".join(emitter.local[v] for v in self.frontier) + ","
        return ["", "    def _parameter_values(self):",
                '        """The forward values computed from parameters and buffers alone (rt.parameter_values '
                'reuses them while those are unchanged)."""',
                *self.lines, f"        return ({values})",
                "", "    def _parameter_sources(self):",
                '        """The parameters and buffers _parameter_values reads."""',
                "        return (", *(f"            {s}," for s in self.sources), "        )",
                "", "    def train(self, mode=True):",
                '        """nn.Module.train; also forgets the cached parameter values (after edits through .data, '
                'which no version counter sees)."""',
                "        rt.forget_values(self)",
                "        return super().train(mode)"]
