"""The linear interpreter (LinearScope): a network with its nonlinear decisions frozen at one input ``x``.

Every op that is affine in its tensor inputs (convolutions, Linear, eval BatchNorm, sums, reshapes, pads,
constant scales) runs as itself. An elementwise nonlinearity is frozen at its local slope at ``x``
(ReLU/LeakyReLU/PReLU masks, hard-sigmoid/hard-swish regions, GELU/tanh tangents); any other op (max-pool:
the argmax at ``x``; norms with statistics; products of two activations) is replaced by its first-order
expansion at ``x``, which for a piecewise-linear op is exactly the frozen decision. The frozen network
``g`` is affine, ``g(v) = A(x) v + c(x)``, and ``g(x) = f(x)``: ``c`` is ``g(0)``; rows and columns of
``A`` come from vector-Jacobian and Jacobian-vector products of ``g`` (never the whole matrix).

Softmax attention (ops declaring ``attention_weights`` and ``attend``) has its attention probabilities frozen
at ``x`` -- treated as constants, as LinearScope does, not differentiated -- so it is affine in its values;
:meth:`LinearInterpreter.describe` lists how each nonlinear op was frozen.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import torch

from archdsl.errors import Diagnostic, UsageError
from archdsl.ir.graph import Graph, Node
from archdsl.ops.base import Trait

_AS_IS = (Trait.LINEAR, Trait.AFFINE, Trait.SHAPE_ONLY, Trait.EVAL_IDENTITY)


def _quiet(transform: Callable, *args):
    """A torch.func transform without torch's own deprecation notice (its jvp rules are set up by jit.script)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.* deprecated", category=DeprecationWarning)
        return transform(*args)


def _node_function(node: Node, graph: Graph) -> Callable:
    """``f(module, *inputs)``: the node's forward expression from its torch lowering (archdsl's own source)."""
    import torch.nn as nn
    import torch.nn.functional as F

    from archdsl.backends.torch import runtime as rt
    from archdsl.backends.torch.codegen import attr_ref
    from archdsl.backends.torch.registry import rule_for

    types = graph.value_types()
    args = [f"a{i}" for i in range(len(node.inputs))]
    ref = attr_ref(node.module or "") if node.params else None
    expr = rule_for(node.op).call(node.op, args, ref, [types[v] for v in node.inputs])
    namespace = {"torch": torch, "nn": nn, "F": F, "rt": rt, "math": math}
    # Safe: `expr` is archdsl's own lowering source for this node (what codegen writes into model.py; module
    # paths escaped by attr_ref, attribute values validated by the op's schema), never text from a spec file.
    return eval(f"lambda {', '.join(['self', *args])}: {expr}", namespace)  # noqa: S307


def _affine(node: Node, graph: Graph) -> bool:
    """Affine in its tensor inputs in eval mode (runs as itself in the frozen network)."""
    op = node.op
    if any(op.has(t) for t in _AS_IS):
        return True
    if op.has(Trait.CHANNEL_AFFINE) and len(node.inputs) == 1:
        return op.eval_affine_axis(graph.value_types()[node.inputs[0]]) is not None
    return False


class _Attends(Protocol):
    """An op that computes attention probabilities and applies given ones (ops/attention.py)."""

    def attention_weights(self, params: dict, inputs: list) -> Any: ...

    def attend(self, params: dict, weights: Any, inputs: list) -> Any: ...


@dataclass
class _Step:
    node: Node
    fn: Callable
    kind: str                          # "const", "affine", "slope", "tangent", "attention"
    live: tuple[bool, ...] = ()        # which inputs depend on x
    at: tuple[Any, ...] = ()           # the inputs at x
    out: Any = None                    # the outputs at x
    slope: Any = None
    shift: Any = None
    weights: Any = None                # attention: the probabilities at x, and the op's parameters
    params: Any = None


class LinearInterpreter:
    """``f(x) = A(x) x + c(x)`` for a network frozen at ``x``: ``output``, ``bias``, ``matvec``, ``rmatvec``."""

    def __init__(self, module: torch.nn.Module, graph: Graph, x: torch.Tensor):
        floats = [k for k, t in graph.inputs.items() if t.dtype.startswith(("float", "bfloat"))]
        if len(graph.inputs) != 1 or len(floats) != 1:
            raise UsageError(Diagnostic(f"linearize needs a model with one floating-point input; model {graph.name} "
                                        f"has inputs {', '.join(graph.inputs) or 'none'}", graph.span))
        if len(graph.outputs) != 1:
            raise UsageError(Diagnostic(f"linearize needs a model with one output; model {graph.name} has "
                                        f"{len(graph.outputs)}", graph.span))
        self.module, self.graph, self.x = module.eval(), graph, x
        self._input = next(iter(graph.inputs))
        self._steps = self._record(x)
        self._zero = torch.zeros_like(x)
        self.output = self._value_at_x
        self.bias = self._frozen(self._zero).detach()

    # -- recording and the frozen network ----------------------------------------------------------
    def _record(self, x: torch.Tensor) -> list[_Step]:
        env: dict[str, Any] = {self._input: x}
        live: dict[str, bool] = {self._input: True}
        steps = []
        for node in self.graph.nodes:
            fn = _node_function(node, self.graph)
            ins = [env[v] for v in node.inputs]
            flags = tuple(live[v] for v in node.inputs)
            with torch.no_grad():
                out = fn(self.module, *ins)
            outs = out if isinstance(out, tuple) else (out,)
            kind = "const" if not any(flags) else "affine" if _affine(node, self.graph) else \
                "attention" if hasattr(node.op, "attend") else \
                "slope" if node.op.has(Trait.ELEMENTWISE) and len(node.inputs) == 1 else "tangent"
            step = _Step(node, fn, kind, flags, tuple(ins), out)
            if kind == "attention":
                self._freeze_attention(step)
            elif kind == "slope":
                step.slope, step.shift = self._slope(step)
            elif kind == "tangent":
                self._expand(step, [a for a, f in zip(ins, flags, strict=True) if f])    # refuses early
            steps.append(step)
            env.update(zip(node.outputs, outs, strict=True))
            live.update(dict.fromkeys(node.outputs, any(flags)))
        self._value_at_x = env[self.graph.outputs[next(iter(self.graph.outputs))]].detach()
        return steps

    def _freeze_attention(self, step: _Step) -> None:
        """Record the attention probabilities at x; check that attending with them gives the op's own output."""
        node = step.node
        tensors = dict(self.module.state_dict(keep_vars=True))
        step.params = {local: tensors[full].detach() for local, full in node.params.items()}
        with torch.no_grad():
            op = cast(_Attends, node.op)             # its kind is "attention": it has attend
            step.weights = op.attention_weights(step.params, list(step.at))
            again = op.attend(step.params, step.weights, list(step.at))
        scale = max(step.out.abs().max().item(), 1e-30)
        tol = 1e-9 if step.out.dtype == torch.float64 else 1e-4
        if again.shape != step.out.shape or (again - step.out).abs().max().item() > tol * scale:
            raise UsageError(Diagnostic(f"linearize cannot freeze {node.op.name} '{node.module or node.name}': its "
                                        "attention with frozen weights does not reproduce its output at x",
                                        node.span, "is the model in eval mode (attention dropout off)?"))

    def _slope(self, step: _Step) -> tuple[Any, Any]:
        """An elementwise op's local slope at x, and the shift that makes ``slope * z + shift`` pass through it."""
        z0 = step.at[0]
        y0, s = self._jvp(step, lambda z: step.fn(self.module, z), (z0,), (torch.ones_like(z0),))
        return s.detach(), (y0 - s * z0).detach()

    def _expand(self, step: _Step, deltas: list) -> Any:
        """J(x) applied to ``deltas`` of the live inputs (first-order change of the op's output)."""
        live_at = tuple(a for a, f in zip(step.at, step.live, strict=True) if f)

        def partial(*zs):
            it = iter(zs)
            return step.fn(self.module, *(next(it) if f else a for a, f in zip(step.at, step.live, strict=True)))

        return self._jvp(step, partial, live_at, tuple(deltas))[1]

    def _jvp(self, step: _Step, f: Callable, primals: tuple, tangents: tuple) -> tuple[Any, Any]:
        try:
            return _quiet(torch.func.jvp, f, primals, tangents)
        except (RuntimeError, TypeError, NotImplementedError) as exc:   # torch.func has no jvp rule for this op
            node = step.node
            where = f" ({node.span})" if node.span else ""
            raise UsageError(Diagnostic(f"linearize cannot freeze {node.op.name} '{node.module or node.name}'"
                                        f"{where} at this input: {str(exc).splitlines()[0]}", node.span,
                                        "the linear interpreter needs ops that are differentiable in their "
                                        "floating-point inputs")) from None

    def _frozen(self, v: torch.Tensor) -> torch.Tensor:
        """The frozen (affine) network at ``v``."""
        env: dict[str, Any] = {self._input: v}
        for step in self._steps:
            ins = [env[u] for u in step.node.inputs]
            if step.kind == "const":
                out = step.out
            elif step.kind == "affine":
                out = step.fn(self.module, *ins)
            elif step.kind == "slope":
                out = step.slope * ins[0] + step.shift
            elif step.kind == "attention":
                out = cast(_Attends, step.node.op).attend(step.params, step.weights, ins)
            else:
                deltas = [z - z0 for z, z0, f in zip(ins, step.at, step.live, strict=True) if f]
                change = self._expand(step, deltas)
                out = tuple(a + b for a, b in zip(step.out, change, strict=True)) if isinstance(step.out, tuple) \
                    else step.out + change
            env.update(zip(step.node.outputs, out if isinstance(out, tuple) else (out,), strict=True))
        return env[self.graph.outputs[next(iter(self.graph.outputs))]]

    # -- the public queries -------------------------------------------------------------------------
    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``A(x) v`` (a Jacobian-vector product of the frozen network)."""
        return _quiet(torch.func.jvp, self._frozen, (self._zero,), (v.to(self.x.dtype),))[1].detach()

    def rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        """``A(x)^T u`` (a vector-Jacobian product of the frozen network)."""
        _, pull = _quiet(torch.func.vjp, self._frozen, self._zero)
        return _quiet(pull, u.to(self.bias.dtype))[0].detach()

    def row(self, index: tuple[int, ...]) -> torch.Tensor:
        """Row ``index`` of A (an output element's weights over the input), shaped like the input."""
        u = torch.zeros_like(self.bias)
        u[index] = 1.0
        return self.rmatvec(u)

    def column(self, index: tuple[int, ...]) -> torch.Tensor:
        """Column ``index`` of A (the response to one input element), shaped like the output."""
        v = torch.zeros_like(self.x)
        v[index] = 1.0
        return self.matvec(v)

    def error(self) -> float:
        """Relative error of ``A(x) x + c(x)`` against ``f(x)`` (the interpreter's own check)."""
        ref = self.output.double()
        diff = (self.matvec(self.x) + self.bias - self.output).double().norm().item()
        return diff / max(ref.norm().item(), 1e-300)

    def votes(self, index: tuple[int, ...]) -> tuple[torch.Tensor, float]:
        """The split of output ``index`` (a logit) into the input's pixel-wise votes ``A[index] * x`` and the bias
        part ``c[index]``: ``votes.sum() + bias == f(x)[index]``."""
        return self.row(index) * self.x, float(self.bias[index])

    def describe(self) -> str:
        """How each nonlinear op was frozen, one line per kind."""
        kinds: dict[str, list[str]] = {}
        for s in self._steps:
            if s.kind in ("slope", "tangent", "attention"):
                kinds.setdefault(s.kind, []).append(s.node.op.name)
        lines = [f"linear interpreter of {self.graph.name}: f(x) = A(x) x + c(x), check error {self.error():.2e}"]
        labels = {"slope": "frozen at their local slope (masks for ReLU-like ops)",
                  "tangent": "replaced by their first-order expansion at x (max-pool: the argmax)",
                  "attention": "softmax attention with its attention weights frozen at x (constants, not "
                               "differentiated: A(x) is not the Jacobian there)"}
        for kind, ops in kinds.items():
            counts = {o: ops.count(o) for o in dict.fromkeys(ops)}
            lines.append(f"  {labels[kind]}: " + ", ".join(f"{o} x{n}" for o, n in counts.items()))
        return "\n".join(lines)


def linearize(model: Any, x: torch.Tensor, name: str | None = None, **params: Any) -> LinearInterpreter:
    """The linear interpreter of ``model`` (an archdsl-built ``nn.Module``, a spec or a zoo name) at input ``x``.

    A spec or zoo name is built with its seeded initial weights, in ``x``'s dtype.
    """
    graph = getattr(model, "archdsl_graph", None)
    if not isinstance(model, torch.nn.Module):
        from archdsl.api import build

        model = build(model, name, **params).to(x.dtype)
        graph = model.archdsl_graph
    elif graph is None:
        raise UsageError(Diagnostic("linearize needs a module built by archdsl (archdsl.build or "
                                    "Simplified.module()), a spec or a zoo name"))
    return LinearInterpreter(model, graph, x)
