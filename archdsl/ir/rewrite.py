"""GraphEditor: a working copy of an immutable Graph for one rewrite, with the use/def queries passes need.

A pass opens an editor on its input graph, queries producers and users, replaces uses, removes nodes and
adds new ones (types and parameter declarations come from the op's own rules), then calls :meth:`finish`
for a new Graph. The input graph is never changed.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable

from archdsl.errors import Diagnostic, VerifyError
from archdsl.ir.graph import Graph, Node, Param
from archdsl.ir.types import Span, TensorType
from archdsl.ops.base import OpDef, ParamSpec, apply_rules

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")


def param_from_spec(full: str, spec: ParamSpec) -> Param:
    """The Graph declaration of an op's parameter ``spec`` under the full name ``full``."""
    return Param(name=full, shape=spec.shape, dtype=spec.dtype, init=spec.init, buffer=spec.buffer, axis=spec.axis,
                 fan_in=spec.fan_in, layout=spec.layout, groups=spec.groups)


def join_path(*parts: str | None) -> str:
    """``a.b`` from non-empty parts (the module-path convention of parameter names)."""
    return ".".join(p for p in parts if p)


class GraphEditor:
    """Mutable working copy of a Graph: nodes in order, parameters, outputs; :meth:`finish` returns a Graph."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes: list[Node] = list(graph.nodes)
        self.params: dict[str, Param] = dict(graph.params)
        self.outputs: dict[str, str] = dict(graph.outputs)
        self.types: dict[str, TensorType] = graph.value_types()
        self._taken = set(self.types) | {n.name for n in self.nodes}
        self._index_dirty = True

    # -- queries -------------------------------------------------------------------------------
    def _reindex(self) -> None:
        if self._index_dirty:
            self._producer = {v: n for n in self.nodes for v in n.outputs}
            self._by_name = {n.name: n for n in self.nodes}
            self._users: dict[str, list[Node]] = {}
            for n in self.nodes:
                for v in dict.fromkeys(n.inputs):
                    self._users.setdefault(v, []).append(n)
            self._index_dirty = False

    def node(self, name: str) -> Node | None:
        """The current version of the node called ``name`` (None once removed): edits replace node objects."""
        self._reindex()
        return self._by_name.get(name)

    def live(self, name: str) -> Node:
        """The current version of the node called ``name``, which must still be in the graph."""
        node = self.node(name)
        if node is None:
            raise KeyError(f"node {name!r} was removed from the graph being edited")
        return node

    def producer(self, value: str) -> Node | None:
        """The node that computes ``value`` (None for graph inputs)."""
        self._reindex()
        return self._producer.get(value)

    def users(self, value: str) -> list[Node]:
        """Nodes that read ``value``, in graph order (each node once)."""
        self._reindex()
        return list(self._users.get(value, ()))

    def num_uses(self, value: str) -> int:
        """Reads of ``value`` by nodes (counting repeated inputs) plus graph outputs that name it."""
        self._reindex()
        reads = sum(n.inputs.count(value) for n in self._users.get(value, ()))
        return reads + sum(1 for v in self.outputs.values() if v == value)

    def is_output(self, value: str) -> bool:
        """True when a graph output names ``value``."""
        return value in self.outputs.values()

    def param_users(self, full: str) -> list[Node]:
        """Nodes that use the parameter ``full`` (more than one for a shared layer)."""
        return [n for n in self.nodes if full in n.params.values()]

    def module_params(self, prefix: str) -> set[str]:
        """Parameter names under the module path ``prefix`` (all of them for the empty prefix)."""
        return {k for k in self.params if not prefix or k == prefix or k.startswith(prefix + ".")}

    # -- edits ---------------------------------------------------------------------------------
    def replace_uses(self, old: str, new: str) -> None:
        """Make every reader of ``old`` (nodes and graph outputs) read ``new`` instead."""
        if old == new:
            return
        self.nodes = [n if old not in n.inputs else n.model_copy(update={"inputs": tuple(new if v == old else v
                                                                                      for v in n.inputs)})
                      for n in self.nodes]
        self.outputs = {k: new if v == old else v for k, v in self.outputs.items()}
        self._index_dirty = True

    def remove(self, *nodes: Node) -> None:
        """Remove ``nodes``; parameters no node uses any more are dropped by :meth:`finish`."""
        names = {n.name for n in nodes}
        self.nodes = [n for n in self.nodes if n.name not in names]
        self._index_dirty = True

    def fresh_value(self, hint: str) -> str:
        """A value name not used in the graph, derived from ``hint`` (``reparam_conv``, ``reparam_conv_2``)."""
        base = _NOT_IDENT.sub("_", hint) or "v"
        name, k = base, 1
        while name in self._taken:
            k += 1
            name = f"{base}_{k}"
        self._taken.add(name)
        return name

    def fresh_module(self, path: str) -> str:
        """A module path with no parameters under it yet (``a.reparam_conv``, then ``a.reparam_conv_2``)."""
        name, k = path, 1
        while self.module_params(name) or any(p.startswith(name + ".") for p in self.params):
            k += 1
            name = f"{path}_{k}"
        return name

    def add_node(self, op: OpDef, inputs: Iterable[str], *, before: Node | None = None, module: str | None = None,
                 scope: tuple[str, ...] = (), span: Span | None = None, tags: tuple[str, ...] = (),
                 hint: str | None = None) -> Node:
        """Insert ``op`` applied to ``inputs`` (before ``before``, else at the end) and declare its parameters.

        Output types and parameter shapes come from the op's own rules; parameters are named
        ``{module}.{local}``. Raises VerifyError when the op does not accept the input types.
        """
        inputs = tuple(inputs)
        try:
            resolved, outs, specs = apply_rules(op, [self.types[v] for v in inputs])
        except (ValueError, TypeError, KeyError) as exc:   # OpError is a ValueError
            raise VerifyError(Diagnostic(f"a rewrite built {op.name} on inputs it does not accept: {exc}", span)) \
                from None
        if specs and module is None:
            raise VerifyError(Diagnostic(f"a rewrite built {op.name}, which has parameters, without a module path",
                                         span))
        mapping: dict[str, str] = {}
        for local, spec in specs.items():
            full = join_path(module, local)
            self.params[full] = param_from_spec(full, spec)
            mapping[local] = full
        base = hint or module or op.name
        names = [self.fresh_value(base if len(outs) == 1 else f"{base}_{i}") for i in range(len(outs))]
        node = Node(name=names[0], op=resolved, inputs=inputs, outputs=tuple(names), types=tuple(outs),
                    params=mapping, module=module, scope=scope, span=span, tags=tags)
        self.types.update(zip(names, outs, strict=True))
        at = len(self.nodes) if before is None else next(i for i, n in enumerate(self.nodes) if n.name == before.name)
        self.nodes.insert(at, node)
        self._index_dirty = True
        return node

    def finish(self, **changes) -> Graph:
        """The new Graph: nodes topologically ordered (stable), unused parameters dropped."""
        used = {full for n in self.nodes for full in n.params.values()}
        params = {k: v for k, v in self.params.items() if k in used}
        nodes = _stable_toposort(self.nodes, set(self.graph.inputs))
        return self.graph.replace(nodes=tuple(nodes), params=params, outputs=self.outputs, **changes)


def _stable_toposort(nodes: list[Node], ready: set[str]) -> list[Node]:
    """Nodes in an order where every input is computed first; among ready nodes, the given order wins."""
    producer = {v: i for i, n in enumerate(nodes) for v in n.outputs}
    waiting = [sum(1 for v in set(n.inputs) if v in producer and v not in ready) for n in nodes]
    readers: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        for v in set(n.inputs):
            if v in producer and v not in ready:
                readers.setdefault(producer[v], []).append(i)
    heap = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(heap)
    out: list[Node] = []
    while heap:
        i = heapq.heappop(heap)
        out.append(nodes[i])
        for j in readers.get(i, ()):
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(heap, j)
    if len(out) < len(nodes):       # a cycle: keep the rest in order, verify() names it
        seen = {id(n) for n in out}
        out += [n for n in nodes if id(n) not in seen]
    return out
