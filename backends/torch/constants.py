"""Build-time values in generated modules: constructor expressions run once in ``__init__``, never per forward.

A value is computed at build time when its node has no parameters and all its inputs are such values (so
``arange``, ``zeros``, ``eye`` and every op applied only to them). Each one a forward reads is registered as a
non-persistent buffer ``_const_<name>`` (it follows ``.to(device)`` and stays out of the state_dict); one read
only by other build-time nodes stays a local of ``__init__``. A ``Buffer`` node (Trait.BUFFER) registers its input
under its own path, in the state_dict iff it declares a parameter (``persistent=true``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archdsl.backends.torch.registry import rule_for
from archdsl.errors import Diagnostic, UsageError
from archdsl.ir.graph import Graph, Node
from archdsl.ops.base import Trait

if TYPE_CHECKING:
    from archdsl.backends.torch.codegen import _Emitter

PREFIX = "_const_"


def build_time_values(graph: Graph) -> set[str]:
    """Values computable when the model is built: static-shaped outputs of parameter-free nodes (non-persistent
    buffers included) fed only by such values."""
    known: set[str] = set()
    for node in graph.nodes:
        if node.params or node.op.has(Trait.STOCHASTIC):     # a persistent buffer may be loaded: read at run time
            continue
        static = all(isinstance(d, int) for t in node.types for d in t.shape)    # no size read from an input
        if static and all(v in known for v in node.inputs):
            known.update(node.outputs)
    return known


def buffer_problems(graph: Graph) -> list[Diagnostic]:
    """A Buffer whose input depends on a model input or a parameter (it could not be computed at build time)."""
    known = build_time_values(graph)
    known |= {v for n in graph.nodes if n.op.has(Trait.BUFFER) for v in n.outputs}
    return [Diagnostic(f"buffer '{node.module}' is computed from the model's inputs or parameters", node.span,
                       hint="a buffer's value is made when the model is built: use constructors (arange, zeros, "
                            "eye, full) and ops on them")
            for node in graph.nodes if node.op.has(Trait.BUFFER) and not all(v in known for v in node.inputs)]


def _attr_ref(path: str) -> str:
    from archdsl.backends.torch.codegen import attr_ref  # codegen imports this module

    return attr_ref(path)


class BuildTime:
    """Decides where each build-time value lives and emits its ``__init__`` lines for the code generator."""

    def __init__(self, emitter: _Emitter) -> None:
        graph = emitter.graph
        problems = buffer_problems(graph)
        if problems:
            raise UsageError(problems)
        self.emitter = emitter
        self.values = build_time_values(graph)
        read_at_run_time = {v for n in graph.nodes if not self.builds(n) for v in n.inputs}
        read_at_run_time |= set(graph.outputs.values())
        self.hoisted: dict[str, str] = {}
        for node in graph.nodes:
            if node.op.has(Trait.BUFFER):
                emitter.local[node.outputs[0]] = _attr_ref(self.path(node))
                read_at_run_time.discard(node.outputs[0])
        for v in sorted(self.values & read_at_run_time):
            self.hoisted[v] = PREFIX + emitter.local[v]
        emitter.fresh -= self.values

    def builds(self, node: Node) -> bool:
        """True for nodes that run in ``__init__`` (build-time values and buffers)."""
        return node.op.has(Trait.BUFFER) or all(v in self.values for v in node.outputs)

    def path(self, node: Node) -> str:
        """The module path a Buffer is registered under (it must be assigned to a name)."""
        if not node.module:
            raise UsageError(Diagnostic("a buffer needs a name", node.span,
                                        hint="assign it to a name: `idx = Buffer(expr, persistent=false)`"))
        return node.module

    def emit(self, node: Node) -> bool:
        """Emit ``node``'s ``__init__`` lines when it runs at build time; False when it belongs to forward."""
        if not self.builds(node):
            return False
        e = self.emitter
        args = [e.local[v] for v in node.inputs]
        if node.op.has(Trait.BUFFER):
            path = self.path(node)
            e.container(path)
            parent, _, leaf = path.rpartition(".")
            owner = _attr_ref(parent) if parent else "self"
            e.init.append(f"        {owner}.register_buffer({leaf!r}, {args[0]}.clone(), "
                          f"persistent={bool(node.params)})")
            return True
        types = [e.types[v] for v in node.inputs]
        expr = rule_for(node.op).call(node.op, args, None, types)
        targets = ", ".join(e.local[v] for v in node.outputs) + ("," if len(node.outputs) > 1 else "")
        e.init.append(f"        {targets} = {expr}")
        for v in node.outputs:
            if v in self.hoisted:
                e.init.append(f"        self.register_buffer({self.hoisted[v]!r}, {e.local[v]}, persistent=False)")
                e.local[v] = f"self.{self.hoisted[v]}"
        return True
